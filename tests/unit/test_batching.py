"""The one BatchGetItem loop: chunks of 100, unprocessed keys asked again after a wait."""

from __future__ import annotations

from typing import Any

from chalicelib.core.batching import BACKOFF_MAX_SECONDS, batch_get, chunked


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
    items = batch_get(dynamodb, "t", keys, sleep=waits.append)  # type: ignore[arg-type]
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


def test_chunked_slices_in_order() -> None:
    assert [list(c) for c in chunked([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
