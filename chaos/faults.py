"""Faults AWS produces, injected at the botocore HTTP layer in front of moto
(`testkit.faults.in_front_of_moto`), so botocore's real parsing and retries, and the
code's own error handling, answer them as they would a real response.

- CloudWatch's quotas as token buckets on the replay's virtual clock: `PutMetricAlarm`
  and `DeleteAlarms` 3 calls/s, `DescribeAlarms` 9 calls/s (PITFALLS), of which other
  consumers of the account's quota take a share (`OTHER_CONSUMERS`); a call over the
  quota is answered `Throttling` and never reaches moto.
- `DeleteAlarms` with more than 100 names is refused, as CloudWatch refuses it.
- Transient `500`/`503` from DynamoDB, CloudWatch and SNS, never carried out.
- Timeouts (`ReadTimeoutError`): for DynamoDB and CloudWatch half of them after moto
  carried the call out (the answer was lost on the way back, so the retry repeats a
  write that happened); for SNS always before, since `Publish` is not idempotent and a
  lost answer would be a second alert no code can prevent.
- A crash: once armed, the handler dies (`Crash`, a `BaseException`, so no `except
  Exception` in the code can catch it, as none can catch a Lambda timeout or an
  out-of-memory kill) right after its N-th AWS call, whose side effect stands.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from testkit.faults import in_front_of_moto

QUOTAS = {"PutMetricAlarm": 3.0, "DeleteAlarms": 3.0, "DescribeAlarms": 9.0}
# The quotas are the account's: the second copy of the lifecycle function, pacing at its
# 1.5 calls/s, takes this much of them (the replay runs one copy).
OTHER_CONSUMERS = {"PutMetricAlarm": 1.5, "DeleteAlarms": 1.5}
DELETE_ALARMS_MAX_NAMES = 100


class Crash(BaseException):
    """The handler's process died mid-invocation."""


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _error(service: str, request: Any, status: int, code: str, message: str) -> AWSResponse:
    """An AWS error response in the protocol the service speaks in this botocore."""
    if service == "sns":  # query protocol: XML
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>chaos</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    else:  # AWS JSON 1.0 (CloudWatch is query-compatible JSON here)
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        if service == "cloudwatch":
            headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
    return AWSResponse(request.url, status, headers, _Raw(body))  # type: ignore[arg-type]


@dataclass
class Rates:
    """How often each fault strikes, per call."""

    server_error: float = 0.02
    timeout: float = 0.01


@dataclass
class HttpFaults:
    """Faults in front of moto for the handlers' clients.

    Args:
        rng: the replay's random source for this layer.
        clock: the virtual clock's seconds (for the quota buckets).
        rates: per-call odds of a 5xx and of a timeout.
    """

    rng: random.Random
    clock: Callable[[], float]
    rates: Rates = field(default_factory=Rates)
    injected: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    limit_violations: list[str] = field(default_factory=list)
    _buckets: dict[str, list[float]] = field(default_factory=dict)
    _crash_after: int | None = None
    _crash_calls: int = 0

    def install(self, client: Any, service: str, operations: list[str]) -> None:
        for operation in operations:
            in_front_of_moto(client, operation, self._hook(service, operation))
        client.meta.events.register(f"after-call.{service}", self._after_call)

    def arm_crash(self, after_calls: int) -> None:
        """The next invocation dies right after its `after_calls`-th AWS call."""
        self._crash_after = after_calls
        self._crash_calls = 0

    def disarm(self) -> bool:
        """Disarm; returns whether the crash had fired."""
        fired = self._crash_after is not None and self._crash_calls >= self._crash_after
        self._crash_after = None
        return fired

    def _after_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if self._crash_after is None:
            return
        self._crash_calls += 1
        if self._crash_calls == self._crash_after:
            self.injected["crash"] += 1
            raise Crash(f"crashed after {model.name}")

    def _hook(self, service: str, operation: str) -> Callable[[Any], AWSResponse | None]:
        from moto.core.models import botocore_stubber

        def fault(request: Any) -> AWSResponse | None:
            if operation == "DeleteAlarms":
                names = [k for k in _form(request) if k.startswith("AlarmNames")]
                if len(names) > DELETE_ALARMS_MAX_NAMES:
                    self.limit_violations.append(f"DeleteAlarms with {len(names)} names")
                    return _error(service, request, 400, "ValidationError", "too many names")
            if operation in QUOTAS and not self._take(operation):
                self.injected["throttled"] += 1
                return _error(service, request, 400, "Throttling", "Rate exceeded")
            roll = self.rng.random()
            if roll < self.rates.server_error:
                self.injected[f"5xx {service}"] += 1
                status, code = self.rng.choice(
                    ((500, "InternalFailure"), (503, "ServiceUnavailable"))
                )
                return _error(service, request, status, code, "injected")
            if roll < self.rates.server_error + self.rates.timeout:
                self.injected[f"timeout {service}"] += 1
                if service != "sns" and self.rng.random() < 0.5:
                    # Carried out, but the answer is lost.
                    botocore_stubber(f"before-send.{service}.{operation}", request)
                raise ReadTimeoutError(endpoint_url=request.url)
            return None

        return fault

    def _take(self, operation: str) -> bool:
        rate = QUOTAS[operation] - OTHER_CONSUMERS.get(operation, 0.0)
        now = self.clock()
        tokens, last = self._buckets.get(operation, [rate, now])
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[operation] = [tokens, now]
            return False
        self._buckets[operation] = [tokens - 1, now]
        return True


def _form(request: Any) -> dict[str, Any]:
    """The parameters of a request body (JSON protocol)."""
    try:
        body = json.loads(request.body or b"{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(body, dict):
        return {}
    names = body.get("AlarmNames")
    if isinstance(names, list):
        return {f"AlarmNames.{i}": n for i, n in enumerate(names)}
    return body
