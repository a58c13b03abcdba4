"""Retries with backoff and full jitter within a time budget; final errors at once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from spawn_report.sending import MAX_DELAY, call_with_retries, describe, retryable


def error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutMetricData",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return calls, call


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (error("Throttling"), True),
        (error("ProvisionedThroughputExceededException"), True),
        (error("Whatever", 503), True),
        (error("SlowDown", 429), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (error("AccessDenied", 403), False),
        (error("ResourceNotFoundException"), False),
        (error("ValidationError"), False),
    ],
)
def test_what_is_worth_another_attempt(exc: Exception, expected: bool) -> None:
    assert retryable(exc) is expected


def test_transient_errors_are_retried_until_success() -> None:
    clock = Clock()
    calls, call = failing(error("Throttling"), error("InternalFailure", 500))

    result, attempts = call_with_retries(call, 10.0, clock.time, clock.sleep, random.Random(1))

    assert (result, attempts.count, attempts.error, len(calls)) == ("ok", 3, None, 3)
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.1  # full jitter: uniform in [0, base·2^attempt]
    assert 0 <= clock.sleeps[1] <= 0.2


def test_retries_stop_at_the_deadline() -> None:
    clock = Clock()
    calls, call = failing(*[error("Throttling")] * 1000)

    result, attempts = call_with_retries(call, 30.0, clock.time, clock.sleep, random.Random(2))

    assert result is None
    assert attempts.count == len(calls) > 5
    assert clock.now < 30.0
    assert max(clock.sleeps) <= MAX_DELAY
    assert describe(attempts.error) == "Throttling: m"


def test_a_final_error_is_not_retried() -> None:
    clock = Clock()
    calls, call = failing(error("AccessDenied", 403))

    result, attempts = call_with_retries(call, 30.0, clock.time, clock.sleep, random.Random(3))

    assert (result, attempts.count, len(calls), clock.sleeps) == (None, 1, 1, [])


def test_every_call_gets_one_attempt_even_past_the_deadline() -> None:
    clock = Clock()
    clock.now = 100.0
    calls, call = failing()

    result, attempts = call_with_retries(call, 50.0, clock.time, clock.sleep, random.Random(4))

    assert (result, attempts.count, len(calls)) == ("ok", 1, 1)
