"""The simulated workers' job output, as `spawn-report run` ships it (SPEC §16).

Each simulated worker gets the kit's own `LogShipper` on its stream
(`/aws/spawn/workers`, `{array_id}/{task_index}/{instance_id}`), pumped on the
simulator's steps rather than by a thread. Workers log their progress, an `ERROR` line
per failed task, and a worker that fails dies of a real Python traceback (raised and
formatted here) ending in `RuntimeError: CUDA out of memory`; its row records exit code
1 and the traceback's last lines, as `spawn-report run` writes them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from spawn_report.logs import GROUP, LogShipper, stream_name
from spawn_report.run import TAIL_LINES, tail_message

if TYPE_CHECKING:
    from spawn_report import Reporter

OOM = "CUDA out of memory"
#: Shippers send at most this often (the kit's own interval).
PUMP_SECONDS = 5.0


class _Worker(Protocol):
    array_id: str
    index: int
    instance_id: str
    hostname: str
    tasks_total: int
    tasks_completed: int
    error_count: int
    reporter: Reporter


def _allocate(batch: int) -> None:
    raise RuntimeError(OOM)


def _train_step(batch: int) -> None:
    _allocate(batch * 2)


def oom_traceback(batch: int) -> list[str]:
    """A real traceback, as Python prints it for an uncaught `RuntimeError`."""
    try:
        _train_step(batch)
    except RuntimeError as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return text.splitlines()
    raise AssertionError("unreachable")  # pragma: no cover


class WorkerLogs:
    """Log streams of the simulated workers, through the kit's shipper, in `logs`."""

    def __init__(self, logs: Any, spool_dir: Path, clock: Callable[[], float]) -> None:
        self._logs = logs
        self._spool_dir = spool_dir
        self._clock = clock
        self._shippers: dict[tuple[str, int, str], LogShipper] = {}
        self._last_pump = 0.0

    def _shipper(self, worker: _Worker) -> LogShipper:
        key = (worker.array_id, worker.index, worker.instance_id)
        if key not in self._shippers:
            target = (GROUP, stream_name(*key))
            self._shippers[key] = LogShipper(
                lambda: target,
                lambda: self._logs,
                self._spool_dir,
                clock=self._clock,
                start=False,
            )
        return self._shippers[key]

    def line(self, worker: _Worker, text: str) -> None:
        self._shipper(worker).write(text)

    def started(self, worker: _Worker) -> None:
        self.line(worker, f"worker {worker.index} on {worker.hostname}: {worker.tasks_total} tasks")

    def progressed(self, worker: _Worker, done: int, errors: int) -> None:
        for _ in range(errors):
            self.line(worker, f"ERROR task {done}: transient failure, retried")
        self.line(worker, f"tasks {done}/{worker.tasks_total} done")

    def failed(self, worker: _Worker) -> None:
        """The job dies of CUDA running out of memory: the traceback on stderr, then
        the row `spawn-report run` writes (exit code 1, the stderr tail)."""
        lines = oom_traceback(worker.tasks_completed)
        for text in lines:
            self.line(worker, text)
        worker.reporter.progress(
            "failed",
            worker.tasks_completed,
            tasks_total=worker.tasks_total,
            error_count=worker.error_count,
            message=tail_message(lines[-TAIL_LINES:]),
            exit_code=1,
        )
        self._close(worker)

    def completed(self, worker: _Worker) -> None:
        self.line(worker, "all tasks done")
        worker.reporter.progress(
            "completed",
            worker.tasks_completed,
            tasks_total=worker.tasks_total,
            error_count=worker.error_count,
            exit_code=0,
        )
        self._close(worker)

    def ended(self, worker: _Worker, text: str | None) -> None:
        """The worker's last line, if any (a spot notice); what waits is sent now and
        its shipper let go (also for a worker lost without a word)."""
        if (
            text is not None
            and (worker.array_id, worker.index, worker.instance_id) in self._shippers
        ):
            self.line(worker, text)
        self._close(worker)

    def _close(self, worker: _Worker) -> None:
        shipper = self._shippers.pop((worker.array_id, worker.index, worker.instance_id), None)
        if shipper is not None:
            shipper.close(budget_seconds=2.0)

    def pump(self) -> None:
        """Send what the workers wrote, at most every `PUMP_SECONDS`."""
        now = self._clock()
        if now - self._last_pump < PUMP_SECONDS:
            return
        self._last_pump = now
        for shipper in list(self._shippers.values()):
            shipper.pump()
