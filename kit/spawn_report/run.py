"""`spawn-report run -- CMD …`: run the job, tee its output to CloudWatch Logs, record how
it ended (SPEC §16).

The job's stdout and stderr reach the terminal as they come (bytes untouched), and each
line goes to the worker's stream through a `LogShipper` (logs.py), which never blocks
the job. When the job ends, its row is written: `status` completed (exit 0) or failed,
`exit_code` (0-255; 128 + n after signal n, as shells give it), `signal` (`SIGKILL`…)
when one ended it, and `message` the last `TAIL_LINES` lines of stderr cut to
`MESSAGE_MAX` keeping the newest. `spawn-report run` exits with the job's status.
"""

from __future__ import annotations

import os
import selectors
import signal as signals
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any

from spawn_report.exceptions import ReportError
from spawn_report.logs import GROUP, MAX_EVENT_BYTES, LogShipper, stream_name
from spawn_report.reporter import Reporter
from spawn_report.rows import MESSAGE_MAX

TAIL_LINES = 20
READ_SIZE = 65536
# After the job, the last lines get this long to reach CloudWatch Logs.
CLOSE_BUDGET_SECONDS = 10.0
JOIN_SECONDS = 5.0


def ended(returncode: int) -> tuple[int, str | None]:
    """(exit status as a shell gives it, signal name or None) of a Popen return code."""
    if returncode >= 0:
        return returncode & 0xFF, None
    number = -returncode
    try:
        name: str | None = signals.Signals(number).name
    except ValueError:
        name = None  # an unnamed signal: the status says which
    return (128 + number) & 0xFF, name


def tail_message(lines: Sequence[str], limit: int = MESSAGE_MAX) -> str | None:
    """The last lines, newest kept whole when cutting: at most `limit` characters."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        cost = len(line) + (1 if kept else 0)
        if size + cost > limit:
            if not kept:
                kept.append(line[: limit - 1] + "…")
            break
        kept.append(line)
        size += cost
    text = "\n".join(reversed(kept))
    return text or None


class _Source:
    """One pipe being copied: where its bytes go, and its unfinished line."""

    def __init__(self, pipe: IO[bytes], out: IO[bytes] | None, line: Callable[[str], None]):
        self.pipe = pipe
        self.out = out
        self.line = line
        self.pending = b""

    def take(self, data: bytes) -> None:
        if self.out is not None:
            try:
                self.out.write(data)
                self.out.flush()
            except (OSError, ValueError):
                self.out = None  # a closed terminal never stops the job
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for raw in lines:
            self.emit(raw)
        while len(self.pending) > MAX_EVENT_BYTES:
            self.emit(self.pending[:MAX_EVENT_BYTES])
            self.pending = self.pending[MAX_EVENT_BYTES:]

    def emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        self.line(text[:-1] if text.endswith("\r") else text)


class Tee:
    """Copies pipes to their terminals as bytes come, and hands each line to its
    callback (decoded, without its newline; a line longer than an event in parts).

    One thread reads every pipe, so lines are handed over in the order they were read:
    a stdout line written before a stderr line comes first (when both are waiting at
    once, the pipes are taken in the order given).
    """

    def __init__(
        self, sources: Sequence[tuple[IO[bytes], IO[bytes] | None, Callable[[str], None]]]
    ):
        self._sources = [_Source(*source) for source in sources]
        self.thread = threading.Thread(target=self._run, name="spawn-report-tee", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for order, source in enumerate(self._sources):
            selector.register(source.pipe, selectors.EVENT_READ, (order, source))
        open_pipes = len(self._sources)
        while open_pipes:
            ready = sorted((key.data for key, _ in selector.select()), key=lambda d: d[0])
            for _, source in ready:
                try:
                    data = os.read(source.pipe.fileno(), READ_SIZE)
                except OSError:
                    data = b""
                if data:
                    source.take(data)
                    continue
                selector.unregister(source.pipe)
                open_pipes -= 1
                if source.pending:
                    source.emit(source.pending)
                source.pipe.close()
        selector.close()


def _ignore(_signum: int, _frame: Any) -> None:
    """SIGINT while the job runs: the job has it too, and ends as it sees fit."""


def shipper_for(reporter: Reporter, start: bool = True) -> LogShipper:
    """The shipper of this worker's stream, through the reporter's identity and region."""

    def target() -> tuple[str, str]:
        array_id, index, instance_id, _ = reporter.identity.require_row_keys()
        return GROUP, stream_name(array_id, index, instance_id)

    return LogShipper(
        target,
        reporter.logs_client,
        reporter.settings.spool_dir,
        clock=reporter.clock,
        budget_seconds=min(reporter.settings.budget_seconds, 5.0),
        start=start,
        err=reporter.err,
    )


def drain_logs(reporter: Reporter) -> None:
    """Send the job output earlier runs left in the spool (`spawn-report flush`)."""
    shipper = shipper_for(reporter, start=False)
    try:
        if not shipper.drain_spool(reporter.settings.budget_seconds):
            reporter.failures += 1
    except OSError:
        pass  # an unusable spool holds nothing; the metrics' flush said so already


def record_exit(
    reporter: Reporter, exit_code: int, signal: str | None, stderr_tail: Sequence[str]
) -> bool:
    """Write the final row: completed on 0, else failed, with the exit state and the
    stderr tail; the task counts and total are the worker's last reported ones (kept
    in the spool's `counters.json`), else 0 and none."""
    last = reporter.last_report()
    totals, declared = last if last else (None, None)
    return reporter.progress(
        "completed" if exit_code == 0 and signal is None else "failed",
        totals.tasks if totals else 0,
        tasks_total=declared,
        error_count=totals.errors if totals else None,
        message=tail_message(stderr_tail),
        exit_code=exit_code,
        signal=signal,
    )


def run_job(
    reporter: Reporter,
    command: Sequence[str],
    *,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    shipper: LogShipper | None = None,
) -> int:
    """Run `command`; returns its exit status (127/126 when it cannot start)."""
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    ship = shipper or shipper_for(reporter)
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def on_stderr(line: str) -> None:
        tail.append(line)
        ship.write(line)

    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # a Python job's lines come as written
    # Ctrl-C reaches the job from the terminal (its process group); we wait for it to
    # end. A handler, not SIG_IGN: an ignored signal stays ignored across exec.
    previous_int = signals.signal(signals.SIGINT, _ignore)
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous_term = signals.signal(signals.SIGTERM, forward)
    try:
        try:
            child = subprocess.Popen(  # noqa: S603 - the user's own command
                list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
        except OSError as exc:
            line = f"spawn-report: cannot run {command[0]!r}: {exc.strerror or exc}"
            on_stderr(line)
            reporter.err(line[len("spawn-report: ") :])
            status, name = (127 if isinstance(exc, FileNotFoundError) else 126), None
        else:
            assert child.stdout is not None
            assert child.stderr is not None
            tee = Tee([(child.stdout, out, ship.write), (child.stderr, err, on_stderr)])
            returncode = child.wait()
            # A background child of the job may keep a pipe open: don't wait on it.
            tee.thread.join(JOIN_SECONDS)
            status, name = ended(returncode)
    finally:
        signals.signal(signals.SIGINT, previous_int)
        signals.signal(signals.SIGTERM, previous_term)
    try:
        ship.close(min(CLOSE_BUDGET_SECONDS, reporter.settings.budget_seconds))
    except Exception as exc:  # the job's status is what counts; say why, carry on
        reporter.err(f"job output not all sent: {type(exc).__name__}: {exc}")
    try:
        record_exit(reporter, status, name, list(tail))
    except ReportError as exc:  # --strict: the job's own status still wins
        reporter.err(str(exc))
    return status
