"""A job's output to CloudWatch Logs (SPEC §16): batched, spooled, never in the job's way.

Group `/aws/spawn/workers`, one stream per worker, `{array_id}/{task_index}/{instance_id}`.
Each line is one event, as written (stderr lines carry no prefix). `LogShipper.write`
only puts the line in a bounded queue (a full queue drops it and counts it); a
background thread sends what waited every `interval` seconds within PutLogEvents'
limits (`batches`), retrying throttling and 5xx within a budget (`sending.py`). What
cannot be sent goes to a spool on disk (`spool.py`) and is sent first, in order, once
the service answers again; `spawn-report flush` also drains it. See docs/kit.md.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from spawn_report.rows import log_stream_array
from spawn_report.spool import Spool

GROUP = "/aws/spawn/workers"
# PutLogEvents limits (CloudWatch Logs API reference, PutLogEvents): at most 10,000
# events and 1,048,576 bytes a call, counted as each message's UTF-8 bytes plus 26;
# no batch spans more than 24 hours; events in chronological order; each event at most
# 256 KB (newer pages say 1 MB: the older bound holds on both). Events more than 14 days
# old or 2 hours ahead are rejected one by one (counted as dropped here).
MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_SPAN_MS = 24 * 3600 * 1000
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
# Shipping: a line waits at most `INTERVAL_SECONDS` (plus a tick), and no call carries
# less output than that unless a batch is full or the job ends. Then: how many lines
# may wait in memory, how much the spool may hold (beyond either, lines are dropped and
# counted), and the longest back-off while the service is unreachable.
INTERVAL_SECONDS = 5.0
TICK_SECONDS = 1.0
QUEUE_LINES = 50_000
SPOOL_MAX_BYTES = 64 * 1024 * 1024
MAX_BACKOFF_SECONDS = 60.0
SPOOL_SUBDIR = "logs"
UNREACHABLE_CLOSE_SECONDS = 1.0


class Event(NamedTuple):
    """One log event: epoch milliseconds, and the message (one line, no newline)."""

    timestamp: int
    message: str


def stream_name(array_id: str, task_index: int, instance_id: str) -> str:
    """The agreed stream of one worker: `{array_id}/{task_index}/{instance_id}`, the
    array id written as `log_stream_array` says (a `:` is not allowed in stream names)."""
    return f"{log_stream_array(array_id)}/{task_index}/{instance_id}"


def event_bytes(message: str) -> int:
    """What an event counts against a batch's 1,048,576 bytes."""
    return len(message.encode("utf-8")) + EVENT_OVERHEAD


def split_line(message: str, limit: int = MAX_EVENT_BYTES) -> list[str]:
    """A line too long for one event, as consecutive events of at most `limit` UTF-8
    bytes each, cut between characters (nothing is lost)."""
    data = message.encode("utf-8")
    if len(data) <= limit:
        return [message]
    parts = []
    while data:
        cut = min(limit, len(data))
        # Never cut inside a character: back off continuation bytes (10xxxxxx).
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        parts.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    return parts


def batches(events: Iterable[Event]) -> list[list[Event]]:
    """Events as PutLogEvents batches: chronological (a stable sort: lines of the same
    millisecond keep their order), each within the count, byte and 24 h limits.
    Oversized messages are split first."""
    ordered = sorted(
        (Event(e.timestamp, part) for e in events for part in split_line(e.message)),
        key=lambda e: e.timestamp,
    )
    out: list[list[Event]] = []
    current: list[Event] = []
    size = 0
    for event in ordered:
        cost = event_bytes(event.message)
        if current and (
            len(current) >= MAX_EVENTS
            or size + cost > MAX_BATCH_BYTES
            or event.timestamp - current[0].timestamp > MAX_SPAN_MS
        ):
            out.append(current)
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        out.append(current)
    return out


def rejected(response: dict[str, Any], count: int) -> int:
    """How many events of a batch of `count` the service refused (too old or new)."""
    info = response.get("rejectedLogEventsInfo") or {}
    old = max(info.get("tooOldLogEventEndIndex", -1), info.get("expiredLogEventEndIndex", -1))
    new = info.get("tooNewLogEventStartIndex")
    refused = old + 1
    if new is not None:
        refused += count - max(int(new), old + 1)
    return int(max(0, min(count, refused)))


@dataclass
class ShipStats:
    """What a shipper did: lines and bytes the job wrote, what reached the service."""

    lines_written: int = 0
    bytes_written: int = 0
    events_sent: int = 0
    bytes_sent: int = 0
    calls: int = 0
    dropped: int = 0
    spooled: int = 0
    errors: list[str] = field(default_factory=list)


class LogShipper:
    """Ships one worker's lines to its stream.

    Args:
        target: (group, stream), called on the shipper's thread at the first send (so
            resolving the identity never delays the job); None: nowhere to send, lines
            are counted as dropped.
        client: makes the `logs` client (on the shipper's thread).
        spool_dir: the kit's spool directory; logs wait in its `logs/` folder.
        clock: epoch seconds; sleep: for retries; budget_seconds: retry time per send.
        start: run the background thread (False: the caller calls `pump()`).
    """

    def __init__(
        self,
        target: Callable[[], tuple[str, str] | None],
        client: Callable[[], Any],
        spool_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = INTERVAL_SECONDS,
        budget_seconds: float = 5.0,
        queue_lines: int = QUEUE_LINES,
        start: bool = True,
        err: Callable[[str], None] | None = None,
    ) -> None:
        self._target_of = target
        self._client_of = client
        self.spool = Spool(spool_dir / SPOOL_SUBDIR)
        self.clock = clock
        self.sleep = sleep
        self.interval = interval
        self.budget_seconds = budget_seconds
        self.stats = ShipStats()
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=queue_lines)
        self._held: list[Event] = []
        self._counting = threading.Lock()
        self._target: tuple[str, str] | None = None
        self._resolved = False
        self._client: Any = None
        self._created: set[tuple[str, str]] = set()
        self._spool_bytes = 0
        self._spooled_lines = False
        self._retry_at = 0.0
        self._backoff = interval
        self._err = err
        self._said: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._loop, name="spawn-report-logs")
            self._thread.daemon = True
            self._thread.start()

    # ------------------------------------------------------------------ the job's side

    def write(self, message: str, at: float | None = None) -> None:
        """Queue one line (never blocks; a full queue drops it and counts it)."""
        stamp = int((self.clock() if at is None else at) * 1000)
        with self._counting:  # writers may be several threads (the job's pipes)
            self.stats.lines_written += 1
            self.stats.bytes_written += len(message.encode("utf-8"))
            try:
                self._queue.put_nowait(Event(stamp, message))
            except queue.Full:
                self.stats.dropped += 1

    def close(self, budget_seconds: float | None = None) -> ShipStats:
        """Stop the thread and send what waits (within `budget_seconds`); what cannot
        be sent stays in the spool for the next run or `spawn-report flush`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._spooled_lines:
            # Unreachable a moment ago: one short try, the rest waits in the spool.
            budget_seconds = min(UNREACHABLE_CLOSE_SECONDS, budget_seconds or 0.0)
        self._retry_at = 0.0
        self.pump(force=True, budget_seconds=budget_seconds)
        if self.stats.dropped and self._err:
            self._err(f"{self.stats.dropped} log line(s) not sent (queue full or spool full)")
        return self.stats

    # ------------------------------------------------------------------ the thread

    def _loop(self) -> None:
        while not self._stop.wait(min(TICK_SECONDS, self.interval)):
            try:
                self.pump()
            except Exception as exc:  # the job must never notice
                self._say(f"log shipping error: {type(exc).__name__}: {exc}")

    def _say(self, line: str) -> None:
        self.stats.errors.append(line)
        if self._err and line not in self._said:
            self._said.add(line)
            self._err(line)

    def _take(self) -> list[Event]:
        taken = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken

    def pump(self, force: bool = False, budget_seconds: float | None = None) -> None:
        """Send what waits: the spool first (oldest first), then the new lines. While
        the service is unreachable, new lines go to the spool and sends back off."""
        events = self._held + self._take()
        self._held = []
        if not self._resolved:
            self._resolved = True
            try:
                self._target = self._target_of()
            except Exception as exc:  # no identity: nowhere to send
                self._say(f"job output not sent to CloudWatch Logs: {exc}")
        if self._target is None:
            self.stats.dropped += len(events)
            return
        group, stream = self._target
        reachable = not self._spooled_lines and self.clock() >= self._retry_at
        if reachable and not force and events and not self._due(events):
            self._held = events
            return
        if self._spooled_lines or self.clock() < self._retry_at:
            self._to_spool(group, stream, events)
            events = []
        if self.clock() < self._retry_at and not force:
            return
        budget = self.budget_seconds if budget_seconds is None else budget_seconds
        deadline = self.clock() + budget
        if self._spooled_lines and not self._drain(deadline):
            self._failed_now()
            return
        unsent = self._send(group, stream, events, deadline)
        if unsent:
            self._to_spool(group, stream, unsent)
            self._failed_now()
        else:
            self._backoff = self.interval

    def _due(self, events: Sequence[Event]) -> bool:
        """Whether held lines go now: the oldest waited `interval`, or a batch is full."""
        if len(events) >= MAX_EVENTS:
            return True
        oldest = min(e.timestamp for e in events) / 1000
        if self.clock() - oldest >= self.interval:
            return True
        return sum(event_bytes(e.message) for e in events) >= MAX_BATCH_BYTES

    def _failed_now(self) -> None:
        self._retry_at = self.clock() + self._backoff
        self._backoff = min(MAX_BACKOFF_SECONDS, self._backoff * 2)

    # ------------------------------------------------------------------ sending

    def _logs(self) -> Any:
        if self._client is None:
            self._client = self._client_of()
        return self._client

    def _call(self, deadline: float, name: str, **kwargs: Any) -> tuple[Any, BaseException | None]:
        from botocore.exceptions import BotoCoreError

        from spawn_report.sending import call_with_retries

        try:
            client = self._logs()
        except (BotoCoreError, ValueError) as exc:
            return None, exc
        result, attempts = call_with_retries(
            lambda: getattr(client, name)(**kwargs),
            deadline,
            self.clock,
            self.sleep,
            random.Random(),  # noqa: S311 - retry jitter
        )
        self.stats.calls += attempts.count
        return result, attempts.error

    def _ensure(self, group: str, stream: str, deadline: float) -> BaseException | None:
        """Create the group and the stream unless known to exist."""
        if (group, stream) in self._created:
            return None
        for name, kwargs in (
            ("create_log_group", {"logGroupName": group}),
            ("create_log_stream", {"logGroupName": group, "logStreamName": stream}),
        ):
            _, error = self._call(deadline, name, **kwargs)
            if error is not None and _code(error) != "ResourceAlreadyExistsException":
                if _code(error) == "AccessDeniedException" and name == "create_log_group":
                    continue  # a worker may only write to a group made for it
                return error
        self._created.add((group, stream))
        return None

    def _send(
        self, group: str, stream: str, events: Sequence[Event], deadline: float
    ) -> list[Event]:
        """Send `events`; returns those not sent (from the first batch that failed)."""
        from spawn_report.sending import describe, retryable

        if not events:
            return []
        pending = batches(events)
        error = self._ensure(group, stream, deadline)
        for at, batch in enumerate(pending):
            if error is None:
                body = [{"timestamp": e.timestamp, "message": e.message} for e in batch]
                response, error = self._call(
                    deadline,
                    "put_log_events",
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=body,
                )
                if error is not None and _code(error) == "ResourceNotFoundException":
                    self._created.discard((group, stream))
                    error = self._ensure(group, stream, deadline)
                    if error is None:
                        response, error = self._call(
                            deadline,
                            "put_log_events",
                            logGroupName=group,
                            logStreamName=stream,
                            logEvents=body,
                        )
            if error is None:
                refused = rejected(response or {}, len(batch))
                self.stats.dropped += refused
                self.stats.events_sent += len(batch) - refused
                self.stats.bytes_sent += sum(len(e.message.encode("utf-8")) for e in batch)
                continue
            if not retryable(error) and _code(error) not in ("AccessDeniedException",):
                # A request the service refuses for good: dropped, not retried forever.
                self._say(f"log lines dropped: {describe(error)}")
                self.stats.dropped += len(batch)
                continue
            self._say(f"log lines spooled, CloudWatch Logs unreachable: {describe(error)}")
            return [e for rest in pending[at:] for e in rest]
        return []

    # ------------------------------------------------------------------ the spool

    def _to_spool(self, group: str, stream: str, events: Sequence[Event]) -> None:
        if not events:
            return
        entries = []
        for event in events:
            size = len(event.message) + 100
            if self._spool_bytes + size > SPOOL_MAX_BYTES:
                self.stats.dropped += 1
                continue
            self._spool_bytes += size
            entries.append({"t": event.timestamp, "g": group, "s": stream, "m": event.message})
        try:
            with self.spool.locked():
                self.spool.append(entries)
        except OSError as exc:
            self.stats.dropped += len(entries)
            self._say(f"log spool {self.spool.directory} unusable ({exc})")
            return
        self.stats.spooled += len(entries)
        self._spooled_lines = True

    def _drain(self, deadline: float) -> bool:
        """Send the spool (this process's lines and what earlier runs left), in order.
        Returns whether it is empty now; what was not sent is put back, in order."""
        return drain(self.spool, self._send, deadline, self._reset_spool)

    def drain_spool(self, budget_seconds: float) -> bool:
        """Send what earlier runs left in the spool (`spawn-report flush`); True when
        nothing is left."""
        with self.spool.locked():
            if self.spool.pending().empty:
                return True
        return drain(self.spool, self._send, self.clock() + budget_seconds, self._reset_spool)

    def _reset_spool(self) -> None:
        self._spooled_lines = False
        self._spool_bytes = 0


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def drain(
    spool: Spool,
    send: Callable[[str, str, Sequence[Event], float], list[Event]],
    deadline: float,
    emptied: Callable[[], None] = lambda: None,
) -> bool:
    """Send every spooled line, stream by stream, in the order written; the lines not
    sent go back to the spool. Returns True when everything went."""
    with spool.claim() as batch:
        by_target: dict[tuple[str, str], list[Event]] = {}
        for entry in batch.entries:
            try:
                key = (str(entry["g"]), str(entry["s"]))
                by_target.setdefault(key, []).append(Event(int(entry["t"]), str(entry["m"])))
            except (KeyError, TypeError, ValueError):
                continue
        left: list[dict[str, Any]] = []
        for (group, stream), events in by_target.items():
            unsent = send(group, stream, events, deadline) if not left else events
            left += [{"t": e.timestamp, "g": group, "s": stream, "m": e.message} for e in unsent]
        if left:
            with spool.locked():
                # Put back before anything newer: pending holds only what came after the
                # claim, so rewrite it with the unsent lines first.
                newer = _read_pending(spool)
                (spool.directory / "pending.jsonl").unlink(missing_ok=True)
                spool.append(left + newer)
            return False
    emptied()
    return True


def _read_pending(spool: Spool) -> list[dict[str, Any]]:
    path = spool.directory / "pending.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
