"""`Reporter`: the kit as a library, and the engine under the `spawn-report` commands.

Every report is validated; progress rows are sent when reported, metrics wait in the
spool and go in batches (boto3 is imported only to send):

1. `progress` builds the SPEC §4 row, checked by the backend's own `validate_row`, and
   writes it at once (a conditional `PutItem`: an older row never overwrites a newer
   one). A row that cannot be sent waits in the spool for the next flush. Its fleet
   `TasksCompleted`/`ErrorCount` increments (`counters.py`) are spooled as metrics.
2. Metrics (`metric`, `timed`, `gpus`) go to the spool (`spool.py`), which is flushed
   when its oldest entry has waited `flush_seconds`, on a final status, on `flush()`,
   or by a background flusher process, in as few `PutMetricData` calls as the limits
   allow (`batching.py`), retrying within `budget_seconds` (`sending.py`).

Reporting never raises into the worker's job unless `strict` is set: a failure is one
line on stderr and a count in `failures`. Example: `with Reporter() as report:
report.progress("running", tasks_completed=10, tasks_total=100)`.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from spawn_report import counters
from spawn_report import identity as identities
from spawn_report.batching import (
    due,
    latest_rows,
    metric_entry,
    metric_requests,
    values_in,
)
from spawn_report.exceptions import ReportError
from spawn_report.gpu import METRICS as GPU_METRICS
from spawn_report.gpu import NAMESPACE as GPU_NAMESPACE
from spawn_report.gpu import GpuReading
from spawn_report.rows import MESSAGE_MAX, STATUSES, Invalid, iso, validate_row
from spawn_report.settings import Settings
from spawn_report.spool import Spool

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudwatch.client import CloudWatchClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_ec2.client import EC2Client

VERSION = "0.1.0"
WORKERS_NAMESPACE = counters.NAMESPACE
PERFORMANCE_NAMESPACE = "Spawn/Performance"
# A spool this large is sent whatever its age (a few thousand entries).
MAX_PENDING_BYTES = 512 * 1024
FLUSHER_LOG = "flusher.log"
FLUSHER_LOG_MAX = 1024 * 1024
# What a write condition compares: a replayed or late row never overwrites a newer one.
NEWER_ONLY = "attribute_not_exists(last_update) OR last_update <= :last_update"
SUPERSEDED = "superseded"
# The longest a `running` row sent at once may retry before it waits in the spool.
AT_ONCE_BUDGET_SECONDS = 2.0


def _stderr(line: str) -> None:
    print(f"spawn-report: {line}", file=sys.stderr, flush=True)


def sampled(tasks: int | None, every_n_tasks: int | None) -> bool:
    """Guide-style sampling: report when `tasks` is a multiple of `every_n_tasks`."""
    if not every_n_tasks:
        return True
    return tasks is not None and tasks % every_n_tasks == 0


def build_row(
    keys: tuple[str, int, str, str],
    status: str,
    tasks_completed: int,
    now: datetime,
    tasks_total: int | None = None,
    error_count: int | None = None,
    message: str | None = None,
    exit_code: int | None = None,
    signal: str | None = None,
) -> dict[str, Any]:
    """The SPEC §4 row, checked by the backend's own validation; ReportError if invalid.

    `last_update` is to the second, as spawn's guide writes it; a message longer than
    the backend keeps is cut to `MESSAGE_MAX` characters.
    """
    array_id, index, instance_id, hostname = keys
    row: dict[str, Any] = {
        "array_id": array_id,
        "task_index": index,
        "status": status,
        "tasks_completed": tasks_completed,
        "last_update": iso(now.replace(microsecond=0)),
        "instance_id": instance_id,
        "hostname": hostname,
    }
    optional = {
        "tasks_total": tasks_total,
        "error_count": error_count,
        "message": message,
        "exit_code": exit_code,
        "signal": signal,
    }
    row.update({k: v for k, v in optional.items() if v is not None})
    if isinstance(row.get("message"), str):
        row["message"] = row["message"][:MESSAGE_MAX]
    parsed = validate_row(row)
    if isinstance(parsed, Invalid):
        raise ReportError(f"progress not reported: {parsed.reason}")
    return row


@dataclass
class FlushResult:
    """What one flush did."""

    rows_written: int = 0
    rows_superseded: int = 0
    values_sent: int = 0
    calls: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


class Reporter:
    """Reports of one worker (or, given explicit identities, of simulated ones).

    Args:
        settings: defaults to `Settings.from_env()`.
        identity: who reports; resolved from the environment, instance metadata and
            EC2 on first use when not given.
        session: a boto3 session for the clients (default: a new default session).
        dynamodb, cloudwatch, ec2: clients to use instead (tests, simulations).
        clock: epoch seconds now (`time.time`); sleep: how to wait (`time.sleep`).
        rng: jitter for retries.
        err: where failure lines go (default: stderr, prefixed `spawn-report:`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        identity: identities.Identity | None = None,
        session: boto3.session.Session | None = None,
        dynamodb: DynamoDBClient | None = None,
        cloudwatch: CloudWatchClient | None = None,
        ec2: EC2Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        err: Callable[[str], None] = _stderr,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.spool = Spool(self.settings.spool_dir)
        self._identity = identity
        self._session = session
        self._dynamodb = dynamodb
        self._cloudwatch = cloudwatch
        self._ec2 = ec2
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self.err = err
        self.failures = 0
        self._said_unsent = False

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    # ------------------------------------------------------------------ identity, clients

    @property
    def identity(self) -> identities.Identity:
        if self._identity is None:
            self._identity = identities.resolve(self.settings, self._ec2_for)
        return self._identity

    def _ec2_for(self, region: str | None) -> EC2Client:
        if self._ec2 is None:
            self._ec2 = self._client("ec2", region)
        return self._ec2

    def _region(self) -> str | None:
        return self.settings.region or self.identity.region

    def _client(self, service: str, region: str | None) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
            user_agent_extra=f"spawn-report/{VERSION}",
        )
        session = self._session or boto3.session.Session()
        return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]

    def logs_client(self) -> Any:
        """A CloudWatch Logs client (the kit's settings: one attempt, short timeouts)."""
        return self._client("logs", self._region())

    def last_report(self) -> tuple[counters.Totals, int | None] | None:
        """This worker's tasks and errors as last reported through this spool, and the
        `tasks_total` it declared; None when it never reported here."""
        array_id, index = self.identity.array_id, self.identity.array_index
        if array_id is None or index is None:
            return None
        try:
            with self.spool.locked():
                state = counters.CounterState(self.spool.directory)
                totals = state.read().get((array_id, index))
        except OSError:
            return None
        return None if totals is None else (totals, state.declared.get((array_id, index)))

    def _dynamodb_client(self) -> DynamoDBClient:
        if self._dynamodb is None:
            self._dynamodb = self._client("dynamodb", self._region())
        return self._dynamodb

    def _cloudwatch_client(self) -> CloudWatchClient:
        if self._cloudwatch is None:
            self._cloudwatch = self._client("cloudwatch", self._region())
        return self._cloudwatch

    # ------------------------------------------------------------------ reports

    def _failed(self, line: str) -> None:
        self.failures += 1
        if self.settings.strict:
            raise ReportError(line)
        self.err(line)

    def progress(
        self,
        status: str,
        tasks_completed: int = 0,
        *,
        tasks_total: int | None = None,
        error_count: int | None = None,
        message: str | None = None,
        every_n_tasks: int | None = None,
        exit_code: int | None = None,
        signal: str | None = None,
    ) -> bool:
        """Report the worker's SPEC §4 row, and the fleet-wide `Spawn/Workers`
        `TasksCompleted` and `ErrorCount` increments since its previous report (see
        `counters`). The row is sent at once (`rows_at_once`), and a final status
        (`completed`, `failed`) sends everything waiting too. Returns whether it was
        recorded.

        Args:
            tasks_completed, error_count: the worker's totals so far, as in the row.
            every_n_tasks: report a `running` row only when `tasks_completed` is a
                multiple of this (final statuses always). A skipped report changes
                nothing, so its increments go with the next recorded one.
        """
        if status == "running" and not sampled(tasks_completed, every_n_tasks):
            return False
        if status not in STATUSES:
            self._failed(f"progress not reported: status {status!r} is not one of {STATUSES}")
            return False
        try:
            row = build_row(
                self.identity.require_row_keys(),
                status,
                tasks_completed,
                datetime.fromtimestamp(self.clock(), tz=timezone.utc),
                tasks_total,
                error_count,
                message,
                exit_code,
                signal,
            )
        except ReportError as exc:
            self._failed(str(exc))
            return False
        now = self.clock()
        entry = {"kind": "row", "t": now, "table": self.settings.progress_table}
        if status == "running" and self.settings.rows_at_once and self._sent_at_once(row):
            self._record([], counted=row, t=now)
        else:
            self._record([{**entry, "row": row}], final=status != "running", counted=row)
        return True

    def _sent_at_once(self, row: dict[str, Any]) -> bool:
        """Write `row` now, retrying briefly; False (said once on stderr) when it could
        not be sent, so it waits in the spool for the next flush."""
        budget = min(self.settings.budget_seconds, AT_ONCE_BUDGET_SECONDS)
        self._connect(dynamodb=True, cloudwatch=False)
        reason, _ = self._put_row(self.settings.progress_table, row, self.clock() + budget)
        if reason in (None, SUPERSEDED):
            return True
        if not self._said_unsent:
            self._said_unsent = True
            self.err(
                f"progress of {row['array_id']}[{row['task_index']}] not sent ({reason}); "
                f"it waits in the spool {self.spool.directory} for the next flush"
            )
        return False

    def _dimensions(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """`ArrayId` when the worker knows its array (unless given), then `extra`."""
        dimensions: dict[str, str] = {}
        array_id = self.identity.array_id
        if array_id and not (extra and "ArrayId" in extra):
            dimensions["ArrayId"] = array_id
        dimensions.update(extra or {})
        return dimensions

    def metric(
        self,
        name: str,
        value: float,
        unit: str = "None",
        dimensions: Mapping[str, str] | None = None,
        namespace: str = WORKERS_NAMESPACE,
        *,
        tasks: int | None = None,
        every_n_tasks: int | None = None,
    ) -> bool:
        """Record one data point (default namespace `Spawn/Workers`, dimension `ArrayId`).

        Args:
            every_n_tasks, tasks: record only when `tasks` is a multiple of
                `every_n_tasks` (a sample, as the guide recommends for per-task values).
        """
        if every_n_tasks and tasks is None:
            self._failed(f"metric {name} not recorded: --every-n-tasks needs --tasks")
            return False
        if not sampled(tasks, every_n_tasks):
            return False
        try:
            entry = metric_entry(
                namespace, name, value, unit, self._dimensions(dimensions), self.clock()
            )
        except ValueError as exc:
            self._failed(f"metric {name} not recorded: {exc}")
            return False
        self._record([entry])
        return True

    def duration(self, operation: str, milliseconds: float) -> bool:
        """`{operation}Duration` in `Spawn/Performance`, dimension `Operation`, as in the
        guide's timing script."""
        return self.metric(
            f"{operation}Duration",
            milliseconds,
            unit="Milliseconds",
            dimensions={"Operation": operation},
            namespace=PERFORMANCE_NAMESPACE,
        )

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time the block (even when it raises) and record it with `duration`."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.duration(operation, (time.monotonic() - started) * 1000)

    def gpus(self, readings: Sequence[GpuReading]) -> None:
        """One sample of every GPU: `Spawn/GPU` metrics per `GPUIndex` and `InstanceId`."""
        now = self.clock()
        base = self._dimensions(None)
        if self.identity.instance_id:
            base["InstanceId"] = self.identity.instance_id
        units = dict(GPU_METRICS.values())
        entries = []
        for reading in readings:
            dimensions = {**base, "GPUIndex": str(reading.index)}
            for name, value in reading.values.items():
                try:
                    entries.append(
                        metric_entry(GPU_NAMESPACE, name, value, units[name], dimensions, now)
                    )
                except ValueError as exc:
                    self._failed(f"GPU {reading.index} {name} not recorded: {exc}")
        if entries:
            self._record(entries)

    # ------------------------------------------------------------------ spool and flushes

    def _record(
        self,
        entries: list[dict[str, Any]],
        final: bool = False,
        counted: Mapping[str, Any] | None = None,
        t: float | None = None,
    ) -> None:
        """Spool `entries` (with the counters' increments of a `counted` progress row,
        stamped `t`), then send them if they are due.

        A spool that cannot be written (a full disk, a directory that cannot be made)
        must not lose the report or fail the job: the entries are sent at once instead,
        without the counters' increments (their state lives in the spool too, and
        guessing it would count a worker's totals again).
        """
        spooled = False
        try:
            with self.spool.locked():
                if counted is None:
                    self.spool.append(entries)
                else:
                    self._append_counted(entries, counted, entries[0]["t"] if entries else t)
                spooled = True
                pending = self.spool.pending()
                send = (
                    final
                    or pending.orphans > 0
                    or pending.size >= MAX_PENDING_BYTES
                    or due(pending.oldest, self.clock(), self.settings.flush_seconds)
                )
                if not send and self.settings.background and not self.spool.flusher_alive():
                    self._start_flusher()
                if not send:
                    self._say_if_nowhere_to_send()
        except OSError as exc:
            if spooled:
                self._failed(f"spool {self.spool.directory}: {exc}; the next flush sends it")
                return
            if not entries:
                self._failed(
                    f"spool {self.spool.directory} unusable ({exc}): "
                    "sent unbuffered without the fleet counters"
                )
                return
            result = FlushResult()
            without = " without the fleet counters" if counted is not None else ""
            result.errors.append(
                f"spool {self.spool.directory} unusable ({exc}): sent unbuffered{without}"
            )
            self._send(entries, self.settings.budget_seconds, result)
            self._report(result)
            return
        if send:
            self.flush()

    def _say_if_nowhere_to_send(self) -> None:
        """Once: reports only spool while no region is known (none set, no instance
        metadata), so say so rather than let them wait unseen."""
        if self._said_unsent or self._region() is not None:
            return
        self._said_unsent = True
        self.err(
            "no AWS region (AWS_DEFAULT_REGION, or the instance's own): reports wait in "
            f"the spool {self.spool.directory} until a flush can send them"
        )

    def _append_counted(
        self, entries: list[dict[str, Any]], row: Mapping[str, Any], t: float | None
    ) -> None:
        """Spool `entries` and the increments of `row`'s totals; the caller holds the
        spool's lock, so concurrent reports of one worker are counted once each.

        The totals are saved after the append: a report that could not be spooled leaves
        them as they were, and its increments go with the next one.
        """
        state = counters.CounterState(self.spool.directory)
        known = state.read()
        worker = (str(row["array_id"]), int(row["task_index"]))
        increments, known[worker] = counters.advance(
            known.get(worker), int(row["tasks_completed"]), row.get("error_count")
        )
        stamp = self.clock() if t is None else float(t)
        if isinstance(row.get("tasks_total"), int):
            state.declared[worker] = int(row["tasks_total"])
        self.spool.append([*entries, *counters.entries(increments, stamp)])
        try:
            state.write(known, worker, stamp)
        except OSError as exc:
            self._failed(f"{state.path} not saved ({exc}): the next report counts these again")

    def _start_flusher(self) -> None:
        """A detached `spawn-report flush --background` that sends what waits once it
        is due and exits when the spool is empty."""
        env = {
            **os.environ,
            "SPAWN_REPORT_DIR": str(self.settings.spool_dir),
            "SPAWN_REPORT_FLUSH_SECONDS": repr(self.settings.flush_seconds),
            "SPAWN_REPORT_BUDGET_SECONDS": repr(self.settings.budget_seconds),
            "SPAWN_REPORT_STRICT": "false",
        }
        region = self.settings.region or (self._identity.region if self._identity else None)
        if region:
            env["AWS_DEFAULT_REGION"] = region
        log = self.settings.spool_dir / FLUSHER_LOG
        mode = "wb" if log.exists() and log.stat().st_size > FLUSHER_LOG_MAX else "ab"
        with log.open(mode) as stderr:
            subprocess.Popen(
                [sys.executable, "-m", "spawn_report", "flush", "--background"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )

    def run_flusher(self) -> None:
        """The background flusher's loop: wait until what is pending is due, send it,
        and exit once the spool is empty. Returns at once if another flusher runs."""
        fd = self.spool.hold_flusher_lock()
        if fd is None:
            return
        try:
            while True:
                with self.spool.locked():
                    pending = self.spool.pending()
                    if pending.empty:
                        # Released under the spool lock: an append after this sees no
                        # flusher and starts one.
                        os.close(fd)
                        fd = -1
                        return
                wait = 0.0
                if not pending.orphans and pending.oldest is not None:
                    wait = pending.oldest + self.settings.flush_seconds - self.clock()
                if wait > 0:
                    self.sleep(wait)
                    continue
                self.flush()
        finally:
            if fd >= 0:
                os.close(fd)

    def flush(self, budget_seconds: float | None = None) -> FlushResult:
        """Send everything in the spool now (and what dead processes left there).

        Retries AWS errors within `budget_seconds` (default: the setting), then drops
        what could not be sent, with one line on stderr saying how much and why.
        """
        budget = self.settings.budget_seconds if budget_seconds is None else budget_seconds
        result = FlushResult()
        try:
            with self.spool.claim() as batch:
                if batch.unreadable:
                    result.errors.append(f"{batch.unreadable} unreadable spool line(s) skipped")
                self._send(batch.entries, budget, result)
        except OSError as exc:
            result.errors.append(f"spool {self.spool.directory} unusable ({exc})")
        self._report(result)
        return result

    def _send(self, entries: list[dict[str, Any]], budget: float, result: FlushResult) -> None:
        """Send spool entries: the newest row per worker, metrics in as few calls as
        the limits allow, all within `budget` seconds."""
        rows = latest_rows(entries)
        requests, stale = metric_requests(entries, self.clock())
        if stale:
            result.dropped += stale
            result.errors.append(f"dropped {stale} metric value(s) older than CloudWatch accepts")
        self._connect(dynamodb=bool(rows), cloudwatch=bool(requests))
        deadline = self.clock() + budget
        for table, row in rows:
            reason, attempts = self._put_row(table, row, deadline)
            result.calls += attempts
            if reason is None:
                result.rows_written += 1
            elif reason == SUPERSEDED:
                result.rows_superseded += 1
            else:
                result.dropped += 1
                result.errors.append(
                    f"dropped progress row of {row['array_id']}[{row['task_index']}] after "
                    f"{attempts} attempt(s): {reason}"
                )
        for request in requests:
            self._put_metrics(request, deadline, result)

    def _report(self, result: FlushResult) -> None:
        """One stderr line for what went wrong (ReportError under `strict`)."""
        if result.errors:
            self.failures += 1
            summary = "; ".join(result.errors)
            if self.settings.strict:
                raise ReportError(summary)
            self.err(summary)

    def _connect(self, dynamodb: bool, cloudwatch: bool) -> None:
        """Make the clients before the retry budget starts: loading a service model takes
        a while on a busy machine and is not what the budget is for. A client that
        cannot be made is reported by the call that needs it."""
        from botocore.exceptions import BotoCoreError

        with contextlib.suppress(BotoCoreError, ReportError):
            if dynamodb:
                self._dynamodb_client()
            if cloudwatch:
                self._cloudwatch_client()

    def _put_row(self, table: str, row: dict[str, Any], deadline: float) -> tuple[str | None, int]:
        """Write one row (retrying until `deadline`): (None if written, `SUPERSEDED` if a
        newer row is there, else why it failed; attempts made)."""
        from boto3.dynamodb.types import TypeSerializer
        from botocore.exceptions import BotoCoreError, ClientError

        from spawn_report.sending import call_with_retries, describe

        serializer = TypeSerializer()
        item = {key: serializer.serialize(value) for key, value in row.items()}
        try:
            dynamodb = self._dynamodb_client()
        except (BotoCoreError, ReportError) as exc:
            return describe(exc), 0

        def put() -> None:
            dynamodb.put_item(
                TableName=table,
                Item=item,
                ConditionExpression=NEWER_ONLY,
                ExpressionAttributeValues={":last_update": {"S": row["last_update"]}},
            )

        _, attempts = call_with_retries(put, deadline, self.clock, self.sleep, self.rng)
        error = attempts.error
        if error is None:
            return None, attempts.count
        if (
            isinstance(error, ClientError)
            and error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
        ):
            return SUPERSEDED, attempts.count
        return describe(error), attempts.count

    def _put_metrics(self, request: dict[str, Any], deadline: float, result: FlushResult) -> None:
        from botocore.exceptions import BotoCoreError

        from spawn_report.sending import call_with_retries, describe

        values = values_in(request)
        try:
            cloudwatch = self._cloudwatch_client()
        except (BotoCoreError, ReportError) as exc:
            result.dropped += values
            result.errors.append(f"dropped {values} metric value(s): {describe(exc)}")
            return

        def put() -> None:
            cloudwatch.put_metric_data(**request)

        _, attempts = call_with_retries(put, deadline, self.clock, self.sleep, self.rng)
        result.calls += attempts.count
        if attempts.error is None:
            result.values_sent += values
        else:
            result.dropped += values
            result.errors.append(
                f"dropped {values} metric value(s) in {request['Namespace']} after "
                f"{attempts.count} attempt(s): {describe(attempts.error)}"
            )


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """`settings` with the non-None `changes` applied (command-line options)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})
