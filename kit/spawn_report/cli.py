"""`spawn-report`: the workers' kit on the command line (SPEC §12).

    spawn-report progress --status running --tasks 40 --total 100 [--every-n-tasks 10]
    spawn-report metric TaskRate 2.5 --unit Count/Second --dim Stage=render
    spawn-report timed Processing -- python process.py
    spawn-report run -- python train.py
    spawn-report gpu --every 60 --optional &
    spawn-report flush

Reporting never fails the job: a reporting failure (AWS down, a bad value, no identity)
is one line on stderr and exit status 0, unless `--strict` is given (then 1, or 2 for
a usage error). `timed` and `run` exit with the command's own status. `gpu` without
`nvidia-smi` exits 1, or 0 with `--optional`. Ctrl-C flushes what it can (status 130).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from spawn_report.exceptions import GpuError, ReportError
from spawn_report.gpu import GpuMissing
from spawn_report.gpu import read as read_gpus
from spawn_report.reporter import VERSION, Reporter, with_overrides
from spawn_report.rows import STATUSES
from spawn_report.settings import Settings

# On Ctrl-C (or SIGTERM) a last flush gets at most this long.
INTERRUPT_BUDGET_SECONDS = 5.0


class UsageError(Exception):
    pass


class Stopped(Exception):
    """SIGTERM arrived; carries the exit status to use."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ≥ 0")
    return int(text)


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 0")
    return value


def _dimension(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--strict", action="store_true", default=None, help="reporting failures exit 1"
    )
    common.add_argument(
        "--flush-seconds",
        type=_seconds,
        help="longest wait in the spool before sending (SPAWN_REPORT_FLUSH_SECONDS, 120)",
    )
    common.add_argument(
        "--budget",
        type=_seconds,
        dest="budget_seconds",
        help="seconds a flush may retry AWS errors (SPAWN_REPORT_BUDGET_SECONDS, 10)",
    )
    root = _Parser(
        prog="spawn-report",
        description="Report a spawn worker's progress and metrics, batched, never failing the job.",
    )
    root.add_argument("--version", action="version", version=f"spawn-report {VERSION}")
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    progress = commands.add_parser(
        "progress",
        parents=[common],
        help="write the progress row; publish the fleet's task and error counts",
    )
    progress.add_argument("--status", required=True, choices=STATUSES)
    progress.add_argument("--tasks", type=_count, default=0, help="tasks completed")
    progress.add_argument("--total", type=_count, help="tasks in all")
    progress.add_argument("--errors", type=_count, help="errors so far")
    progress.add_argument("--message", help=f"a short note (cut to {500} characters)")
    progress.add_argument(
        "--every-n-tasks", type=_positive, help="report running only when --tasks is a multiple"
    )

    metric = commands.add_parser("metric", parents=[common], help="record a metric value")
    metric.add_argument("name")
    metric.add_argument("value", type=float)
    metric.add_argument("--unit", default="None", help="a CloudWatch unit (default None)")
    metric.add_argument(
        "--dim", type=_dimension, action="append", default=[], help="dimension NAME=VALUE"
    )
    metric.add_argument("--namespace", default="Spawn/Workers")
    metric.add_argument("--tasks", type=_count, help="tasks completed, for --every-n-tasks")
    metric.add_argument(
        "--every-n-tasks", type=_positive, help="record only when --tasks is a multiple"
    )

    timed = commands.add_parser(
        "timed", parents=[common], help="run a command, record its duration"
    )
    timed.add_argument("operation", help="its options (--strict ...) go before it")
    timed.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run the job: its output to CloudWatch Logs, its exit state to the row",
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")

    gpu = commands.add_parser("gpu", parents=[common], help="sample every GPU via nvidia-smi")
    gpu.add_argument("--every", type=_seconds, default=60.0, help="seconds between samples")
    gpu.add_argument("--count", type=_positive, help="stop after this many samples")
    gpu.add_argument(
        "--optional", action="store_true", help="exit 0 quietly when there is no nvidia-smi"
    )

    flush = commands.add_parser("flush", parents=[common], help="send what waits in the spool")
    flush.add_argument("--background", action="store_true", help=argparse.SUPPRESS)

    commands.add_parser("identity", parents=[common], help="print who this worker is (JSON)")
    return root


def _stop(signum: int, _frame: Any) -> None:
    raise Stopped(128 + signum)


def _progress(reporter: Reporter, args: argparse.Namespace) -> int:
    reporter.progress(
        args.status,
        args.tasks,
        tasks_total=args.total,
        error_count=args.errors,
        message=args.message,
        every_n_tasks=args.every_n_tasks,
    )
    return 0


def _metric(reporter: Reporter, args: argparse.Namespace) -> int:
    reporter.metric(
        args.name,
        args.value,
        unit=args.unit,
        dimensions=dict(args.dim),
        namespace=args.namespace,
        tasks=args.tasks,
        every_n_tasks=args.every_n_tasks,
    )
    return 0


def _timed(reporter: Reporter, args: argparse.Namespace) -> int:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("spawn-report timed: give the command after --")
    started = time.monotonic()
    # The command gets Ctrl-C from the terminal itself; we wait for it to end, time it.
    # A no-op handler rather than SIG_IGN, which the command would inherit across exec.
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    try:
        try:
            child = subprocess.Popen(command)  # noqa: S603 - the user's own command
        except OSError as exc:
            reporter.err(f"cannot run {command[0]!r}: {exc.strerror or exc}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        try:
            status = child.wait()
        except Stopped:
            child.terminate()
            status = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    status = 128 - status if status < 0 else status
    try:
        reporter.duration(args.operation, (time.monotonic() - started) * 1000)
    except ReportError as exc:  # --strict: the command's own failure still wins
        reporter.err(str(exc))
        return status or 1
    return status


def _run(reporter: Reporter, args: argparse.Namespace) -> int:
    from spawn_report.run import run_job

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("spawn-report run: give the command after --")
    return run_job(reporter, command)


def _gpu(reporter: Reporter, args: argparse.Namespace) -> int:
    last_error = ""
    taken = 0
    next_at = time.monotonic()
    try:
        while True:
            try:
                reporter.gpus(read_gpus())
            except GpuMissing as exc:
                reporter.err(str(exc))
                return 0 if args.optional else 1
            except GpuError as exc:
                # One line per distinct problem, not one a minute.
                if str(exc) != last_error:
                    reporter.failures += 1
                    reporter.err(str(exc))
                    last_error = str(exc)
            taken += 1
            if args.count is not None and taken >= args.count:
                return 0
            next_at += args.every
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        reporter.flush()


def _flush(reporter: Reporter, args: argparse.Namespace) -> int:
    if args.background:
        reporter.run_flusher()
    else:
        from spawn_report.run import drain_logs

        reporter.flush()
        drain_logs(reporter)
    return 0


def _identity(reporter: Reporter, _args: argparse.Namespace) -> int:
    print(json.dumps(asdict(reporter.identity), indent=2))
    return 0


COMMANDS = {
    "progress": _progress,
    "metric": _metric,
    "timed": _timed,
    "run": _run,
    "gpu": _gpu,
    "flush": _flush,
    "identity": _identity,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (never raises, never a traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="spawn-report: %(message)s")
    strict = "--strict" in argv
    try:
        settings = Settings.from_env()
        strict = strict or settings.strict
        args = parser().parse_args(argv)
        settings = with_overrides(
            settings,
            strict=args.strict,
            flush_seconds=args.flush_seconds,
            budget_seconds=args.budget_seconds,
        )
    except (UsageError, ReportError) as exc:
        print(exc if isinstance(exc, UsageError) else f"spawn-report: {exc}", file=sys.stderr)
        return 2 if strict else 0
    reporter = Reporter(settings)
    signal.signal(signal.SIGTERM, _stop)
    try:
        status = COMMANDS[args.command](reporter, args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2 if strict else 0
    except (KeyboardInterrupt, Stopped) as exc:
        status = exc.args[0] if isinstance(exc, Stopped) else 130
        with contextlib.suppress(ReportError, KeyboardInterrupt, Stopped):
            reporter.flush(INTERRUPT_BUDGET_SECONDS)
        return int(status)
    except ReportError as exc:
        print(f"spawn-report: {exc}", file=sys.stderr)
        return 1
    if settings.strict and reporter.failures and status == 0:
        return 1
    return status


def run() -> None:
    """`python -m spawn_report`."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
