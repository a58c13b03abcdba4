"""Client-side pacing for APIs with low per-account quotas.

CloudWatch allows `PutMetricAlarm` and `DeleteAlarms` about 3 calls per second per
account. Pacing calls under that rate up front costs nothing but the wait, where
running into throttling costs retries, backoff and, past the retry budget, lost work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Pacer(Protocol):
    """What alarm writers pace their calls with: a local `RateLimiter`, or the
    account-wide budget shared by every process (`chalicelib.alarms.budget`)."""

    @property
    def rate(self) -> float:
        """Calls per second this pacer allows."""
        ...

    def reserve(self, calls: int) -> None:
        """Say how many calls are coming, so a shared budget can lease them at once."""
        ...

    def acquire(self) -> None:
        """Wait until one call may be made."""
        ...


class RateLimiter:
    """A token bucket: at most `rate` acquisitions per second, bursts up to `burst`.

    Args:
        rate: sustained acquisitions per second.
        burst: tokens available at once (default 1: no burst above the rate).
        clock: monotonic seconds (default `time.monotonic`); injectable for tests.
        sleep: how to wait (default `time.sleep`).

    Example:
        >>> limiter = RateLimiter(3.0)
        >>> limiter.acquire()  # returns at once, later calls wait ~1/3 s each
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self, calls: int) -> None:
        """Nothing to lease ahead: this bucket lives in this process."""

    def acquire(self) -> None:
        """Take one token, waiting until one is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1
        if wait > 0:
            self._sleep(wait)
