"""Faults AWS produces and moto does not: throttling and transaction conflicts, injected
at the HTTP layer so botocore's real parsing and retry logic, and the code's own error
handling, answer them exactly as they would a real response."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

THROTTLE_BODY = b'{"__type": "Throttling", "message": "Rate exceeded"}'


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


Fault = Callable[[Any], AWSResponse | None]


def in_front_of_moto(client: Any, operation: str, fault: Fault) -> None:
    """Ask `fault(request)` before moto answers `operation` on this client: a response it
    returns is what the client gets, and moto never sees the request, as AWS never
    carries out a throttled or cancelled call.

    botocore calls every `before-send` handler and keeps the first answer, so a handler
    merely registered first would let moto carry the call out anyway. Instead, moto's
    handler is replaced, for this client only, by one that consults the faults first.
    """
    from moto.core.models import botocore_stubber

    faults: dict[str, list[Fault]] | None = getattr(client, "_faults", None)
    if faults is None:
        faults = {}
        client._faults = faults
        client.meta.events.unregister("before-send", botocore_stubber)

        def send(event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
            for check in faults.get(event_name.rsplit(".", 1)[-1], []):
                response = check(request)
                if response is not None:
                    return response
            return botocore_stubber(event_name, request, **kwargs)

        client.meta.events.register("before-send", send)
    faults.setdefault(operation, []).append(fault)


def throttle(client: Any, operation: str, when: Callable[[], bool]) -> list[int]:
    """Answer `operation` with CloudWatch's `Throttling` error whenever `when()` is true.

    Returns a list that grows by one entry per throttled call (0) and per call let
    through (1), so tests can see both. CloudWatch speaks AWS JSON 1.0 (query
    compatible) in this botocore; the assertion guards against a silent change.
    """
    assert client.meta.service_model.resolved_protocol == "json", "throttle body is JSON"
    seen: list[int] = []

    def hook(request: Any) -> AWSResponse | None:
        if when():
            seen.append(0)
            headers = {
                "x-amzn-query-error": "Throttling;Sender",
                "Content-Type": "application/x-amz-json-1.0",
            }
            return AWSResponse(request.url, 400, headers, _Raw(THROTTLE_BODY))  # type: ignore[arg-type]
        seen.append(1)
        return None

    in_front_of_moto(client, operation, hook)
    return seen


def count_calls(*clients: Any) -> dict[str, int]:
    """Count the API calls the clients make, by operation name (one per call, not per
    retry); the dict fills in as they call."""
    counts: dict[str, int] = {}

    def hook(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    for client in clients:
        client.meta.events.register("before-call", hook)
    return counts


CONFLICT_BODY = {
    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
}


class TransactionConflicts:
    """DynamoDB's `TransactionConflict`, which moto never produces.

    DynamoDB cancels a `TransactWriteItems` that touches an item another transaction
    still in flight is writing. moto runs requests one after the other, so here every
    transaction is in flight from the moment it is sent until its answer is back (plus
    `latency`, slept with `sleep`, the time a real transaction takes), across threads;
    one that touches an item in flight is answered, at the HTTP layer, with
    `TransactionCanceledException` whose `CancellationReasons` name `TransactionConflict`
    on exactly the conflicting items, so the caller's real error handling answers it.

    `transactions` counts the transactions sent (attempts), `conflicts` those cancelled.
    """

    def __init__(
        self,
        client: Any,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.latency = latency
        self.sleep = sleep
        self.transactions = 0
        self.conflicts = 0
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._mine = threading.local()
        in_front_of_moto(client, "TransactWriteItems", self._send)
        for event in ("after-call", "after-call-error"):
            client.meta.events.register(f"{event}.dynamodb.TransactWriteItems", self._done)

    @staticmethod
    def _keys(body: bytes) -> list[str]:
        keys = []
        for entry in json.loads(body)["TransactItems"]:
            [action] = entry.values()
            # A Put names its item, not a key: the whole item stands in for it.
            key = action.get("Key", action.get("Item"))
            keys.append(json.dumps([action["TableName"], key], sort_keys=True))
        return keys

    def _send(self, request: Any) -> AWSResponse | None:
        keys = self._keys(request.body)
        me = threading.get_ident()
        with self._lock:
            self.transactions += 1
            busy = [self._in_flight.get(key, me) != me for key in keys]
            if not any(busy):
                for key in keys:
                    self._in_flight[key] = me
                self._mine.keys = keys
        if any(busy):
            self.conflicts += 1
            reasons = [{"Code": "TransactionConflict" if b else "None"} for b in busy]
            body = json.dumps({**CONFLICT_BODY, "CancellationReasons": reasons}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0"}
            return AWSResponse(request.url, 400, headers, _Raw(body))  # type: ignore[arg-type]
        if self.latency:
            self.sleep(self.latency)
        return None

    def _done(self, **_: Any) -> None:
        keys = getattr(self._mine, "keys", [])
        self._mine.keys = []
        with self._lock:
            for key in keys:
                self._in_flight.pop(key, None)
