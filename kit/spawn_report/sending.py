"""Calling AWS without ever failing the job: retries with backoff and jitter within a
time budget, then a clear reason to drop.

botocore's own retries are turned off for the kit's clients (one attempt each), so this
loop is the only one and the budget is real: throttling, 5xx and connection errors are
retried after a "full jitter" sleep (uniform in [0, min(cap, base·2^attempt)]), as long
as the sleep ends before the deadline. Anything else (access denied, a missing table,
a validation error) is final at once. Every call gets at least one attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

T = TypeVar("T")

BASE_DELAY = 0.1
MAX_DELAY = 4.0
# Error codes AWS services use for throttling and transient faults (botocore's standard
# retry mode retries the same ones).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRYABLE_CODES or status >= 500 or status == 429
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def describe(exc: BaseException) -> str:
    """One line for stderr: the AWS error code and message, or the exception."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Attempts:
    """How a call went: attempts made, and the error it ended with (None: success)."""

    count: int = 0
    error: BaseException | None = None


def call_with_retries(
    call: Callable[[], T],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rng: random.Random,
) -> tuple[T | None, Attempts]:
    """Run `call` until it succeeds, fails for good, or the next wait would pass
    `deadline` (a `clock()` value). Returns (result or None, attempts)."""
    attempts = Attempts()
    while True:
        attempts.count += 1
        try:
            result = call()
        except (BotoCoreError, ClientError) as exc:
            attempts.error = exc
            if not retryable(exc):
                return None, attempts
            wait = rng.uniform(0.0, min(MAX_DELAY, BASE_DELAY * 2 ** (attempts.count - 1)))
            if clock() + wait >= deadline:
                return None, attempts
            sleep(wait)
        else:
            attempts.error = None
            return result, attempts
