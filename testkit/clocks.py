"""A virtual clock shared by threads: time moves only when every participant sleeps.

Lets a benchmark run minutes of quota-paced work in seconds, deterministically: API
calls take no virtual time, waits take exactly what the code asks for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock


class VirtualClock:
    def __init__(self, participants: int) -> None:
        self._now = 0.0
        self._active = participants
        self._wakes: dict[int, float] = {}
        self._cv = threading.Condition()

    def time(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        with self._cv:
            me = threading.get_ident()
            wake = self._now + max(0.0, seconds)
            self._wakes[me] = wake
            self._advance()
            while self._now < wake:
                self._cv.wait()
            del self._wakes[me]

    def leave(self) -> None:
        """A participant is done; the others no longer wait for it."""
        with self._cv:
            self._active -= 1
            self._advance()

    def _advance(self) -> None:
        if self._wakes and len(self._wakes) >= self._active:
            self._now = max(self._now, min(self._wakes.values()))
            self._cv.notify_all()


def run_participants(clock: VirtualClock, targets: Sequence[Callable[[], None]]) -> None:
    """Run each target in its own thread until all return, with botocore's retry waits
    on `clock` too (each target must `clock.leave()` when it ends)."""
    with mock.patch("botocore.endpoint.time.sleep", clock.sleep):
        threads = [threading.Thread(target=target) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


_CONDITIONAL_WRITE = threading.Lock()


def atomic_conditional_writes(*clients: Any) -> None:
    """Make moto's in-process DynamoDB carry out each `UpdateItem` atomically, as
    DynamoDB does: moto checks a condition and writes without a lock, so two threads'
    conditional writes on one item could both succeed, which the real service never
    allows (the account-wide alarm budget relies on it)."""
    for client in clients:
        events = client.meta.events
        events.register("before-call.dynamodb.UpdateItem", _hold)
        events.register("after-call.dynamodb.UpdateItem", _release)


def _hold(**_: Any) -> None:
    _CONDITIONAL_WRITE.acquire()


def _release(**_: Any) -> None:
    _CONDITIONAL_WRITE.release()


class ReplayClock:
    """Virtual time: only waits move it, and the replay when it has nothing to do.

    The world does not stop while a handler waits (pacing, retry backoff): whatever
    happens in the world meanwhile happens at its own time, through `world` (given the
    time to reach, it carries out what is due, moving the clock to each step's time).
    """

    def __init__(self, start: datetime) -> None:
        self._t = start.timestamp()
        self.world: Callable[[float], None] | None = None

    def time(self) -> float:
        return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def sleep(self, seconds: float) -> None:
        self.advance_to(self._t + max(0.0, seconds))

    def advance_to(self, t: float) -> None:
        if self.world is not None:
            self.world(t)
        self._t = max(self._t, t)

    def step_to(self, t: float) -> None:
        """Move to a world step's time (never back)."""
        self._t = max(self._t, t)
