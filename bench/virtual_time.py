"""A virtual clock shared by threads: time moves only when every participant sleeps.

Lets a benchmark run minutes of quota-paced work in seconds, deterministically: API
calls take no virtual time, waits take exactly what the code asks for.
"""

from __future__ import annotations

import threading


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
