"""Reading workers' logs from CloudWatch Logs, each read bounded (`bounds`).

`WorkerLogs.page` gives the newest lines of a worker's streams before a position,
oldest first: `GetLogEvents` backwards per stream (`startFromHead=false`), merged by
time; with `grep`, `FilterLogEvents` (one quoted phrase) over windows growing back in
time. A `Position` (before this millisecond, minus the `seen` lines at it already shown)
is what the API's cursor carries. `WorkerLogs.errors` counts error lines per stream of
an array with `FilterLogEvents` on the kit's stream prefix, as the guide's
`filter-log-events --filter-pattern ERROR | jq | sort | uniq -c` does. Every result is
checked again here (time, stream, pattern), which costs nothing in AWS and keeps moto,
which ignores regex patterns and `logStreamNamePrefix`, honest. Details: docs/logs.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.console.logs import WORKERS_GROUP
from chalicelib.worker_logs.bounds import (
    ERROR_FILTER,
    ERRORS_BYTES_MAX,
    ERRORS_CALLS_MAX,
    EVENT_BYTES_MAX,
    EVENT_OVERHEAD,
    EVENTS_PER_CALL,
    GREP_FIRST_WINDOW_MS,
    PAGE_BYTES_MAX,
    RESPONSE_BYTES,
    STREAMS_MAX,
    cut,
    grep_filter,
    kit_stream_prefix,
    parse_kit_stream,
    task_stream_prefix,
)
from chalicelib.worker_logs.errors import ErrorsReport, count_error

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

# What CloudWatch Logs answers when it sheds load: the request can be retried later.
THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "LimitExceededException", "ServiceUnavailableException"}
)
MISSING = "ResourceNotFoundException"


class LogsThrottled(RuntimeError):
    """CloudWatch Logs kept throttling past the client's retries."""


class BudgetSpent(RuntimeError):
    """The request's CloudWatch Logs calls are used up."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Line:
    """One log line; `order` breaks ties between lines of the same millisecond."""

    at_ms: int
    message: str
    order: tuple[int, Any]


@dataclass(frozen=True)
class Position:
    """Lines before `before_ms` (inclusive), less the `seen` newest ones at `before_ms`
    already shown, and none before `start_ms`."""

    before_ms: int
    seen: int
    start_ms: int


@dataclass
class Page:
    lines: list[Line]
    next: Position | None
    truncated: bool = False


@dataclass
class Budget:
    """Calls left for one request."""

    calls: int

    def spend(self) -> None:
        if self.calls <= 0:
            raise BudgetSpent("CloudWatch Logs calls for this request are used up")
        self.calls -= 1


def _drop_seen(lines: list[Line], position: Position) -> list[Line]:
    """`lines` (sorted) without the `seen` newest at `before_ms`, shown on an earlier page."""
    if not position.seen:
        return lines
    at_before = [i for i, line in enumerate(lines) if line.at_ms == position.before_ms]
    shown = set(at_before[-position.seen :])
    return [line for i, line in enumerate(lines) if i not in shown]


def _newest(lines: list[Line], limit: int) -> list[Line]:
    """The newest `limit` lines within the page's byte budget, oldest first."""
    chosen: list[Line] = []
    size = 0
    for line in reversed(lines[-limit:] if limit else []):
        size += len(line.message.encode("utf-8", errors="replace"))
        if chosen and size > PAGE_BYTES_MAX:
            break
        chosen.append(line)
    chosen.reverse()
    return chosen


def _next(page: list[Line], position: Position, more: bool) -> Position | None:
    if not page or not more:
        return None
    first = page[0].at_ms
    seen = sum(1 for line in page if line.at_ms == first)
    if first == position.before_ms:
        seen += position.seen
    return Position(first, seen, position.start_ms)


def _whole_window(events: list[dict[str, Any]], asked: int) -> bool:
    """Whether a backward page is the start of the stream's window: fewer events than
    asked, with room left in the response for another (CloudWatch cuts a page only at
    the event count or the response size), so one call does for a short stream."""
    size = sum(len(str(e.get("message", "")).encode()) + EVENT_OVERHEAD for e in events)
    return len(events) < asked and size + EVENT_BYTES_MAX <= RESPONSE_BYTES


class WorkerLogs:
    """Bounded reads of the workers' log group.

    Args:
        logs: a CloudWatch Logs client.
        group: the workers' log group (`/aws/spawn/workers`).
    """

    def __init__(self, logs: CloudWatchLogsClient, group: str = WORKERS_GROUP) -> None:
        self.logs = logs
        self.group = group

    def _call(self, budget: Budget | None, method: str, **request: Any) -> dict[str, Any] | None:
        """One call; None when the group or stream does not exist (no logs yet)."""
        if budget is not None:
            budget.spend()
        try:
            if method == "describe_log_streams":
                return dict(self.logs.describe_log_streams(**request))
            if method == "get_log_events":
                return dict(self.logs.get_log_events(**request))
            return dict(self.logs.filter_log_events(**request))
        except ClientError as exc:
            if _code(exc) == MISSING:
                return None
            if _code(exc) in THROTTLED:
                raise LogsThrottled(_code(exc)) from None
            raise

    def streams_of(
        self, array_id: str, task_index: int, instance_ids: Sequence[str], budget: Budget
    ) -> list[str]:
        """The worker's streams: the kit's for every instance that ran the task (one
        `DescribeLogStreams` by prefix), and the agent's `{instance_id}` stream of an
        instance the kit wrote nothing for (one call each). At most `STREAMS_MAX`, those
        with the newest events first chosen, returned by name."""
        found = self._call(
            budget,
            "describe_log_streams",
            logGroupName=self.group,
            logStreamNamePrefix=task_stream_prefix(array_id, task_index),
            limit=50,
        )
        streams = {
            s["logStreamName"]: s.get("lastEventTimestamp", 0)
            for s in (found or {}).get("logStreams", [])
        }
        covered = {parse_kit_stream(name, array_id) for name in streams}
        for instance_id in dict.fromkeys(i for i in instance_ids if i):
            if (task_index, instance_id) in covered or found is None:
                continue
            agent = self._call(
                budget,
                "describe_log_streams",
                logGroupName=self.group,
                logStreamNamePrefix=instance_id,
                limit=5,
            )
            for stream in (agent or {}).get("logStreams", []):
                if stream["logStreamName"] == instance_id:
                    streams[instance_id] = stream.get("lastEventTimestamp", 0)
        newest = sorted(streams, key=lambda name: streams[name] or 0, reverse=True)
        return sorted(newest[:STREAMS_MAX])

    def page(
        self,
        streams: Sequence[str],
        position: Position,
        limit: int,
        budget: Budget,
        grep: str | None = None,
    ) -> Page:
        """The newest `limit` lines of `streams` at `position`, oldest first, and where
        the next (older) page starts."""
        if not streams or position.before_ms < position.start_ms:
            return Page([], None)
        if grep:
            lines, more, truncated = self._grep(streams, position, limit, budget, grep)
        else:
            lines, more, truncated = self._tail(streams, position, limit, budget)
        lines.sort(key=lambda line: (line.at_ms, line.order))
        remaining = _drop_seen(lines, position)
        page = _newest(remaining, limit)
        more = more or len(remaining) > len(page)
        return Page(page, _next(page, position, more), truncated)

    def _tail(
        self, streams: Sequence[str], position: Position, limit: int, budget: Budget
    ) -> tuple[list[Line], bool, bool]:
        need = limit + position.seen
        lines: list[Line] = []
        more = truncated = False
        for number, stream in enumerate(streams):
            events: list[dict[str, Any]] = []
            token: str | None = None
            try:
                while len(events) < need:
                    request: dict[str, Any] = {
                        "logGroupName": self.group,
                        "logStreamName": stream,
                        "startTime": position.start_ms,
                        # endTime is exclusive in CloudWatch Logs (inclusive in moto).
                        "endTime": position.before_ms + 1,
                        "startFromHead": False,
                        "limit": min(need - len(events), EVENTS_PER_CALL),
                    }
                    if token is not None:
                        request["nextToken"] = token
                    response = self._call(budget, "get_log_events", **request)
                    if response is None:
                        break
                    raw = response.get("events", [])
                    got = [
                        e
                        for e in raw
                        if position.start_ms <= e.get("timestamp", -1) <= position.before_ms
                    ]
                    events = got + events
                    backward = response.get("nextBackwardToken")
                    if _whole_window(raw, request["limit"]) or not backward or backward == token:
                        break
                    token = backward
                else:
                    more = True
            except BudgetSpent:
                more = truncated = True
            lines.extend(
                Line(e["timestamp"], cut(str(e.get("message", ""))), (number, i))
                for i, e in enumerate(events)
            )
            if truncated:
                break
        return lines, more, truncated

    def _grep(
        self, streams: Sequence[str], position: Position, limit: int, budget: Budget, grep: str
    ) -> tuple[list[Line], bool, bool]:
        need = limit + position.seen
        numbers = {name: n for n, name in enumerate(streams)}
        lines: list[Line] = []
        high, span = position.before_ms, GREP_FIRST_WINDOW_MS
        while True:
            low = max(position.start_ms, high - span + 1)
            token: str | None = None
            try:
                while True:
                    request: dict[str, Any] = {
                        "logGroupName": self.group,
                        "logStreamNames": list(streams),
                        "startTime": low,
                        "endTime": high,
                        "filterPattern": grep_filter(grep),
                        "limit": EVENTS_PER_CALL,
                    }
                    if token is not None:
                        request["nextToken"] = token
                    response = self._call(budget, "filter_log_events", **request)
                    for e in (response or {}).get("events", []):
                        stream, message = e.get("logStreamName"), str(e.get("message", ""))
                        at = e.get("timestamp", -1)
                        if stream in numbers and low <= at <= high and grep in message:
                            order = (numbers[stream], str(e.get("eventId", "")))
                            lines.append(Line(at, cut(message), order))
                    token = (response or {}).get("nextToken")
                    if not token:
                        break
            except BudgetSpent:
                return lines, True, True
            if low <= position.start_ms:
                return lines, False, False
            if len(lines) >= need:
                return lines, True, False
            high, span = low - 1, span * 4

    def errors(self, array_id: str, start_ms: int, end_ms: int, limit: int) -> ErrorsReport:
        """Error lines (`ERROR_RE`) per kit stream of the array between the times, the
        workers with most first; `complete` is false when the call or byte budget ran
        out before the window was read."""
        prefix = kit_stream_prefix(array_id)
        report = ErrorsReport([], 0, complete=True)
        token: str | None = None
        while True:
            if report.calls >= ERRORS_CALLS_MAX or report.bytes_read >= ERRORS_BYTES_MAX:
                report.complete = False
                break
            report.calls += 1
            request: dict[str, Any] = {
                "logGroupName": self.group,
                "logStreamNamePrefix": prefix,
                "startTime": start_ms,
                "endTime": end_ms,
                "filterPattern": ERROR_FILTER,
                "limit": EVENTS_PER_CALL,
            }
            if token is not None:
                request["nextToken"] = token
            response = self._call(None, "filter_log_events", **request)
            if response is None:
                break
            for event in response.get("events", []):
                count_error(report, array_id, event, start_ms, end_ms)
            token = response.get("nextToken")
            if not token:
                break
        ranked = sorted(
            report.by_worker.values(), key=lambda w: (-w.count, w.task_index, w.instance_id)
        )
        report.workers = ranked[:limit]
        report.workers_with_errors = len(ranked)
        return report
