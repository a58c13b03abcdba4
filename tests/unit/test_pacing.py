from __future__ import annotations

import pytest

from chalicelib.core.pacing import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_calls_are_spaced_at_the_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter(3.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(7):
        limiter.acquire()
        fake.calls.append(fake.now)
    assert fake.calls == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])


def test_idle_time_refills_at_most_the_burst() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2.0, burst=2, clock=fake.clock, sleep=fake.sleep)
    fake.now = 100.0
    for _ in range(3):
        limiter.acquire()
        fake.calls.append(fake.now)
    assert fake.calls == pytest.approx([100, 100, 100.5])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
