"""One POST to a destination, and what its answer means for a retry.

`post` never raises for the network: a refused connection, a timeout or an error status
comes back as a `PostResult` whose `outcome` says what to do next — `delivered`,
`retry` (5xx, 429, timeouts; `retry_after` when the service said how long), or
`rejected` (any other 4xx: the URL is gone or the body was refused; retrying cannot fix
it). Nothing here logs or returns the URL: it is a credential.

    >>> post(HttpRequest(url, {"Content-Type": "application/json"}, b"{}"), timeout=5)
    PostResult(outcome='delivered', status=200, retry_after=None, error=None)
"""

from __future__ import annotations

import email.utils
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from chalicelib.notify.model import HttpRequest

Outcome = Literal["delivered", "retry", "rejected"]
USER_AGENT = "spawn-fleet-monitor"
# A Retry-After beyond this is treated as this (SQS delays a message 15 minutes at most).
MAX_RETRY_AFTER_SECONDS = 900.0


@dataclass(frozen=True)
class PostResult:
    """What a POST came to.

    Attributes:
        outcome: `delivered`, `retry` or `rejected`.
        status: the HTTP status, None when no answer came.
        retry_after: seconds the service asked to wait (429 or 503 `Retry-After`).
        error: a short reason for a failure, without the URL.
    """

    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None


def post(request: HttpRequest, timeout: float) -> PostResult:
    """POST `request`; each connect and read may take `timeout` seconds."""
    headers = {"User-Agent": USER_AGENT, **request.headers}
    # The scheme is https (or http to this machine): `parse_destination` checks it.
    outgoing = urllib.request.Request(request.url, data=request.body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:  # noqa: S310
            return classify(response.status, response.headers.get("Retry-After"))
    except urllib.error.HTTPError as exc:
        return classify(exc.code, exc.headers.get("Retry-After") if exc.headers else None)
    except TimeoutError:
        return PostResult("retry", error="timed out")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return PostResult("retry", error="timed out")
        return PostResult("retry", error=f"connection failed: {type(reason).__name__}")
    except (ConnectionError, OSError) as exc:
        return PostResult("retry", error=f"connection failed: {type(exc).__name__}")


def classify(status: int, retry_after: str | None, now: datetime | None = None) -> PostResult:
    """What an HTTP status (and its `Retry-After`) means for the delivery."""
    if 200 <= status < 300:
        return PostResult("delivered", status)
    wait = parse_retry_after(retry_after, now) if retry_after else None
    if status == 429 or status >= 500:
        return PostResult("retry", status, wait, f"HTTP {status}")
    return PostResult("rejected", status, None, f"HTTP {status}")


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number (Slack's, Discord's may have decimals) or an
    HTTP date; None when it is neither."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
