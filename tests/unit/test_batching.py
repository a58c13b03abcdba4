"""The one BatchGetItem loop: chunks of 100, unprocessed keys asked again after a wait."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.batching import (
    BACKOFF_MAX_SECONDS,
    BATCH_GET_MAX_ATTEMPTS,
    BatchGetIncomplete,
    batch_get,
    chunked,
)


class PartialDynamoDB:
    """Answers each BatchGetItem with at most `answer` keys; the rest come back as
    `UnprocessedKeys`, as DynamoDB does under load."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, wanted)] = RequestItems.items()
        keys = wanted["Keys"]
        self.calls.append(len(keys))
        done, rest = keys[: self.answer], keys[self.answer :]
        response: dict[str, Any] = {"Responses": {table: [dict(k) for k in done]}}
        if rest:
            response["UnprocessedKeys"] = {table: {**wanted, "Keys": rest}}
        return response


def test_unprocessed_keys_are_asked_again_after_a_growing_wait() -> None:
    dynamodb = PartialDynamoDB(answer=40)
    waits: list[float] = []
    keys = [{"key": {"S": str(n)}} for n in range(250)]
    items = batch_get(dynamodb, "t", keys, sleep=waits.append, jitter=lambda d: d)  # type: ignore[arg-type]
    assert sorted(i["key"]["S"] for i in items) == sorted(str(n) for n in range(250))
    assert max(dynamodb.calls) == 100  # never more than BatchGetItem takes
    assert dynamodb.calls[:3] == [100, 60, 20]
    assert waits[:2] == [0.05, 0.1]  # doubling from the first
    assert all(w <= BACKOFF_MAX_SECONDS for w in waits)


def test_a_full_answer_needs_no_wait() -> None:
    waits: list[float] = []
    keys = [{"key": {"S": "a"}}]
    assert batch_get(PartialDynamoDB(100), "t", keys, sleep=waits.append) == keys  # type: ignore[arg-type]
    assert waits == []


class NeverDoneDynamoDB:
    """Answers nothing: every key comes back unprocessed, every time."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


def test_attempts_are_capped_and_the_error_names_the_keys_left() -> None:
    dynamodb = NeverDoneDynamoDB()
    waits: list[float] = []
    keys = [{"key": {"S": str(n)}} for n in range(30)]
    with pytest.raises(BatchGetIncomplete, match="left 30 keys unprocessed after 8 attempts"):
        batch_get(dynamodb, "t", keys, sleep=waits.append)  # type: ignore[arg-type]
    assert dynamodb.calls == BATCH_GET_MAX_ATTEMPTS
    assert len(waits) == BATCH_GET_MAX_ATTEMPTS - 1
    assert all(0 < w <= BACKOFF_MAX_SECONDS for w in waits)  # jittered, still capped


class OnceUnprocessedDynamoDB(PartialDynamoDB):
    """Leaves some keys unprocessed on the first call only, then answers in full."""

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        response = super().batch_get_item(RequestItems)
        self.answer = 100
        return response


def test_keys_unprocessed_once_yield_every_item_exactly_once() -> None:
    keys = [{"key": {"S": str(n)}} for n in range(150)]
    dynamodb = OnceUnprocessedDynamoDB(answer=30)
    items = batch_get(dynamodb, "t", keys, sleep=lambda _: None)  # type: ignore[arg-type]
    assert sorted(i["key"]["S"] for i in items) == sorted(str(n) for n in range(150))
    assert len(items) == 150
    assert dynamodb.calls == [100, 70, 50]


def test_chunked_slices_in_order() -> None:
    assert [list(c) for c in chunked([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
