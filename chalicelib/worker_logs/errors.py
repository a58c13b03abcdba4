"""An array's error lines counted per worker, as the guide's `uniq -c` does (SPEC §16).

`count_error` folds one `FilterLogEvents` event into an `ErrorsReport`: it counts only
error lines (`ERROR_RE`) of the array's kit streams within the scan's window, and keeps
each worker's newest line. `WorkerLogs.errors` (`reader`) makes the bounded scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.worker_logs.bounds import ERROR_RE, cut, parse_kit_stream

ERROR_MESSAGE_MAX = 1000


@dataclass
class WorkerErrors:
    task_index: int
    instance_id: str
    count: int = 0
    last_key: tuple[int, str] = (-1, "")
    last_message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "task_index": self.task_index,
            "instance_id": self.instance_id,
            "count": self.count,
            "last_message": self.last_message,
        }


@dataclass
class ErrorsReport:
    workers: list[WorkerErrors]
    workers_with_errors: int
    complete: bool
    calls: int = 0
    bytes_read: int = 0
    by_worker: dict[tuple[int, str], WorkerErrors] = field(default_factory=dict)


def count_error(
    report: ErrorsReport, array_id: str, event: dict[str, Any], start_ms: int, end_ms: int
) -> None:
    """Count one event of a scan if it is an error line of a kit stream of the array
    within the times; the newest one of a worker is its `last_message`."""
    parsed = parse_kit_stream(str(event.get("logStreamName", "")), array_id)
    message = str(event.get("message", ""))
    at = event.get("timestamp", -1)
    if parsed is None or not start_ms <= at <= end_ms or not ERROR_RE.search(message):
        return
    report.bytes_read += len(message.encode("utf-8", errors="replace"))
    worker = report.by_worker.setdefault(parsed, WorkerErrors(*parsed))
    worker.count += 1
    key = (at, str(event.get("eventId", "")))
    if key >= worker.last_key:
        worker.last_key = key
        worker.last_message = cut(message.rstrip("\n"), ERROR_MESSAGE_MAX)
