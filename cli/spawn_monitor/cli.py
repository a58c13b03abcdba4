"""`spawn-monitor`: the command line (SPEC §11). Parses, finds the API, runs a command.

Exit status: 0 success; 1 an array ended with failures (`watch`) or a check failed
(`doctor`); 2 an error, printed as one line on stderr (never a traceback unless
`--debug`); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from spawn_monitor import __version__
from spawn_monitor.api import (
    DEFAULT_STACK,
    ENDPOINT_ENV,
    SIGN_MODES,
    Api,
    ApiError,
    array_path,
    locate,
)

PROG = "spawn-monitor"
WORKER_STATUSES = ("running", "completed", "failed", "lost", "invalid")
ALERT_KINDS = ("alarm", "system")
ALERT_SEVERITIES = ("info", "warning", "critical")
EPILOG = f"""\
The API is --endpoint, else ${ENDPOINT_ENV}, else the ApiUrl output of the stack
(--stack, default {DEFAULT_STACK}). Requests to a deployed stage are signed (SigV4) with
your AWS credentials; a loopback endpoint (make run) is not.
Exit status: 0 ok, 1 array ended with failures / a doctor check failed, 2 error,
130 interrupted. --json output is the API's JSON (schemas in GET /openapi.json), with
every page joined and "next" null."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _common() -> Parser:
    """Options every command takes (also accepted before the command)."""
    parser = Parser(add_help=False)
    common = parser.add_argument_group("common options (also accepted before the command)")
    common.add_argument(
        "--endpoint", help=f"API base URL, e.g. http://127.0.0.1:8000 (or ${ENDPOINT_ENV})"
    )
    common.add_argument(
        "--stack", help=f"CloudFormation stack to read ApiUrl from ({DEFAULT_STACK})"
    )
    common.add_argument("--region", help="AWS region (default: from the endpoint or your config)")
    common.add_argument(
        "--sign",
        choices=SIGN_MODES,
        help="SigV4-sign requests: auto (default: unless the endpoint is loopback), always, never",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def parser() -> argparse.ArgumentParser:
    top = Parser(
        prog=PROG,
        description="Watch spawn job arrays and the fleet through spawn-fleet-monitor's API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common()],
    )
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    top.set_defaults(stack=DEFAULT_STACK, sign="auto")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    # Options after the command must not reset those given before it.
    for action in common._actions:
        action.default = argparse.SUPPRESS

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    watch = command("watch", "live view of one array until it ends (exit 0 completed, 1 failures)")
    watch.add_argument("array_id", metavar="ARRAY_ID")
    watch.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (2)")
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    arrays = command("arrays", "every array with its progress")
    arrays.add_argument(
        "--json", action="store_true", help="print JSON: {arrays: [...], next: null}"
    )
    fleet = command("fleet", "fleet health: instances, unhealthy, interruptions")
    fleet.add_argument("--json", action="store_true", help="print the GET /fleet JSON")
    alerts = command("alerts", "alarm state changes and alerts sent, newest first")
    alerts.add_argument("--limit", type=int, default=20, help="how many, 1-100 (20)")
    alerts.add_argument(
        "--kind", choices=ALERT_KINDS, help="only alarm changes, or only alerts the system sent"
    )
    alerts.add_argument(
        "--event-type",
        metavar="TYPE",
        help="only alerts sent of this type, e.g. spot_interruption, array_budget",
    )
    alerts.add_argument("--array", metavar="ARRAY_ID", help="only entries of this array")
    alerts.add_argument("--severity", choices=ALERT_SEVERITIES, help="only this severity")
    alerts.add_argument("--json", action="store_true", help="print JSON: {alerts: [...]}")
    workers = command("workers", "one array's workers, in task order")
    workers.add_argument("array_id", metavar="ARRAY_ID")
    workers.add_argument("--status", choices=WORKER_STATUSES, help="only workers in this status")
    workers.add_argument(
        "--json", action="store_true", help="print JSON: {workers: [...], next: null}"
    )
    capacity = command(
        "capacity", "where to launch: zones ranked by spot placement score and the fleet's rates"
    )
    capacity.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="T",
        help="instance type to compare, repeatable (default: the types in the fleet's history)",
    )
    capacity.add_argument(
        "--regions",
        action="append",
        default=[],
        metavar="R",
        help="region to score, repeatable or comma-separated (default: --region or your config)",
    )
    capacity.add_argument(
        "--count", type=int, default=1, metavar="N", help="instances to launch, 1+ (1)"
    )
    capacity.add_argument(
        "--by", choices=("zone", "region"), default="zone", help="rank zones (default) or regions"
    )
    capacity.add_argument(
        "--json", action="store_true", help="print JSON (schema: docs/capacity.md)"
    )
    logs = command("logs", "one worker's newest log lines, kept after its instance is gone")
    logs.add_argument("array_id", metavar="ARRAY_ID")
    logs.add_argument("task_index", metavar="INDEX", type=int)
    logs.add_argument("--follow", action="store_true", help="keep printing until the worker ends")
    logs.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT (case-sensitive)")
    logs.add_argument(
        "--since",
        metavar="D",
        help="from D ago (30m, 1h, 2d) or an ISO time (14d; 24h with --grep)",
    )
    logs.add_argument("--limit", type=int, default=100, help="lines, 1-1000 (100)")
    errors = command("errors", "error lines counted per worker of one array, most first")
    errors.add_argument("array_id", metavar="ARRAY_ID")
    errors.add_argument(
        "--since", metavar="D", help="from D ago (30m, 1h, 2d) or an ISO time (24h)"
    )
    errors.add_argument("--limit", type=int, default=50, help="workers, 1-100 (50)")
    errors.add_argument("--json", action="store_true", help="print the GET /errors JSON")
    doctor = command("doctor", "check the deployment; each problem with its fix; cost estimate")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    ui = command("ui", "local web view on 127.0.0.1 that proxies and signs the API")
    ui.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (8765; 0: any)")
    ui.add_argument("--refresh", type=float, default=5.0, help="page refresh in seconds (5)")
    return top


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace, console: Console) -> int:
    session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
    if args.command == "doctor":
        from spawn_monitor.doctor import run_doctor

        return run_doctor(
            session, args.endpoint, args.stack, args.sign, args.region, console, args.json
        )
    api = Api(locate(session, args.endpoint, args.stack, args.sign, args.region), session)
    if args.command == "watch":
        from spawn_monitor.watch import watch

        return watch(api, args.array_id, console, interval=max(0.1, args.interval), once=args.once)
    if args.command == "ui":
        from spawn_monitor.ui import serve

        return serve(api, args.port, max(1.0, args.refresh))

    if args.command == "capacity":
        from spawn_monitor.capacity import run_capacity

        return run_capacity(api, session, args, console)

    if args.command in ("logs", "errors"):
        from spawn_monitor import logs

        try:
            since = logs.since_time(args.since)
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        if args.command == "logs":
            return logs.show_logs(
                api,
                args.array_id,
                args.task_index,
                sys.stdout,
                since=since,
                grep=args.grep,
                limit=args.limit,
                follow=args.follow,
            )
        found = api.get(array_path(args.array_id, "errors"), limit=args.limit, since=since)
        if args.json:
            _print_json(found)
        else:
            console.print(logs.errors_table(found, args.array_id))
        return 0

    from spawn_monitor import views

    if args.command == "arrays":
        items = api.pages("/arrays", "arrays", limit=100)
        document: dict[str, Any] = {"arrays": items, "next": None}
        shown: Any = views.arrays_table(items)
    elif args.command == "fleet":
        document = api.get("/fleet")
        shown = views.fleet_view(document)
    elif args.command == "alerts":
        document = api.get(
            "/alerts",
            limit=args.limit,
            kind=args.kind,
            event_type=args.event_type,
            array_id=args.array,
            severity=args.severity,
        )
        shown = views.alerts_table(document.get("alerts", []))
    else:
        items = api.pages(
            array_path(args.array_id, "workers"), "workers", status=args.status, limit=100
        )
        document = {"workers": items, "next": None}
        shown = views.workers_table(items, f"Workers of {args.array_id}")
    if args.json:
        _print_json(document)
    else:
        console.print(shown)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        return run(args, console)
    except KeyboardInterrupt:
        return 130
    except ApiError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        if args.debug:
            raise
        print(f"{PROG}: AWS error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `spawn-monitor arrays --json | head`
        return 0
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"{PROG}: unexpected error: {type(exc).__name__}: {exc} (--debug shows more)",
            file=sys.stderr,
        )
        return 2
