"""The local buffer between a report and AWS: an append-only spool of JSON lines.

Any number of processes on the worker append to it (each `spawn-report metric` call,
the GPU sampler, a Python worker's `Reporter`); whoever flushes claims what is there
and sends it in batches. Nothing is lost when a process dies:

* `pending.jsonl` takes appends, one JSON object a line, under `lock` (an flock);
* a flush renames it to `sending-<pid>-<n>.jsonl` while holding `lock`, and keeps an
  flock on the claimed file while it sends; the file is removed once every entry in
  it was sent or dropped;
* a claimed file whose flock is free belongs to a process that died (the kernel
  releases flocks of dead processes, even after SIGKILL): the next flush claims it
  too, so its entries are replayed;
* `flusher.lock` is held by the background flusher while it lives.

A line torn by a kill in the middle of an append is skipped and counted.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PENDING = "pending.jsonl"
LOCK = "lock"
FLUSHER_LOCK = "flusher.lock"
CLAIMED_GLOB = "sending-*.jsonl"
_claims = itertools.count()


@dataclass(frozen=True)
class Pending:
    """What waits in the spool: time of the oldest entry, bytes, and dead claims."""

    oldest: float | None
    size: int
    orphans: int

    @property
    def empty(self) -> bool:
        return self.oldest is None and self.size == 0 and self.orphans == 0


@dataclass
class Batch:
    """Entries claimed by one flush, oldest first, and the lines that were unreadable."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0


def _entry_time(line: bytes) -> float:
    """The `t` of a spooled line; 0 (due at once) when it cannot be read."""
    try:
        value = json.loads(line).get("t")
    except (ValueError, AttributeError):
        return 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


class Spool:
    """The spool in `directory` (created 0700 on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the spool's lock: appends, claims and flusher decisions are serialised."""
        self._ensure()
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append entries; the caller holds `locked()`. One write, so a kill tears at
        most the last line."""
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries).encode()
        fd = os.open(self.directory / PENDING, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _orphans(self) -> list[tuple[Path, TextIO]]:
        """Claimed files whose owner died, each opened and flocked by us now."""
        found: list[tuple[Path, TextIO]] = []
        for path in sorted(self.directory.glob(CLAIMED_GLOB)):
            try:
                handle = path.open("r")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            found.append((path, handle))
        return found

    def pending(self) -> Pending:
        """What waits now; the caller holds `locked()`."""
        self._ensure()
        path = self.directory / PENDING
        oldest: float | None = None
        size = 0
        try:
            with path.open("rb") as handle:
                first = handle.readline()
                size = os.fstat(handle.fileno()).st_size
            if first:
                oldest = _entry_time(first)
        except FileNotFoundError:
            pass
        orphans = self._orphans()
        for _, orphan in orphans:
            orphan.close()
        return Pending(oldest, size, len(orphans))

    @contextmanager
    def claim(self) -> Iterator[Batch]:
        """Claim everything pending, and dead processes' claims, for one flush.

        When the block ends normally the claimed files are removed: every entry was
        sent or dropped. When it raises (say, Ctrl-C while sending), they stay, and the
        next flush replays them: delivery is at least once.
        """
        claimed: list[tuple[Path, TextIO]] = []
        try:
            with self.locked():
                claimed = self._orphans()
                pending = self.directory / PENDING
                if pending.exists():
                    target = self.directory / f"sending-{os.getpid()}-{next(_claims)}.jsonl"
                    mine = pending.open("r")
                    fcntl.flock(mine, fcntl.LOCK_EX)
                    pending.rename(target)
                    claimed.append((target, mine))
            batch = Batch()
            for _, claimed_file in claimed:
                for line in claimed_file:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        batch.unreadable += 1
                        continue
                    if isinstance(entry, dict):
                        batch.entries.append(entry)
                    else:
                        batch.unreadable += 1
            yield batch
            for path, _ in claimed:
                path.unlink()
        finally:
            for _, claimed_file in claimed:
                claimed_file.close()

    def hold_flusher_lock(self) -> int | None:
        """The background flusher's liveness lock (a file descriptor), or None if another
        flusher holds it. Closing the descriptor, or dying, releases it."""
        self._ensure()
        fd = os.open(self.directory / FLUSHER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def flusher_alive(self) -> bool:
        fd = self.hold_flusher_lock()
        if fd is None:
            return True
        os.close(fd)
        return False
