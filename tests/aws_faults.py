"""Faults AWS produces and moto does not: throttling, injected at the HTTP layer so
botocore's real retry logic handles them exactly as it would a real response."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

THROTTLE_BODY = b'{"__type": "Throttling", "message": "Rate exceeded"}'


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def throttle(client: Any, operation: str, when: Callable[[], bool]) -> list[int]:
    """Answer `operation` with CloudWatch's `Throttling` error whenever `when()` is true.

    Returns a list that grows by one entry per throttled call (0) and per call let
    through (1), so tests can see both. CloudWatch speaks AWS JSON 1.0 (query
    compatible) in this botocore; the assertion guards against a silent change.
    """
    assert client.meta.service_model.resolved_protocol == "json", "throttle body is JSON"
    seen: list[int] = []

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        if when():
            seen.append(0)
            headers = {
                "x-amzn-query-error": "Throttling;Sender",
                "Content-Type": "application/x-amz-json-1.0",
            }
            return AWSResponse(request.url, 400, headers, _Raw(THROTTLE_BODY))  # type: ignore[arg-type]
        seen.append(1)
        return None

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"before-send.{service}.{operation}", hook)
    return seen


def count_calls(client: Any) -> dict[str, int]:
    """Count the API calls the client makes, by operation name (one per call, not per retry)."""
    counts: dict[str, int] = {}

    def hook(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    client.meta.events.register("before-call", hook)
    return counts
