"""Batches: slicing a list for APIs with a per-call limit, and DynamoDB's BatchGetItem.

`batch_get` is the one BatchGetItem loop: at most 100 keys a call, and the keys
DynamoDB leaves unprocessed (a partial success, which botocore does not retry) asked
again after an exponential backoff, as AWS advises, until every key is answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_MAX = 100
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0


def chunked[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batch_get(
    dynamodb: DynamoDBClient,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    consistent: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """The items of `table` at `keys` (absent ones are left out), in calls of at most
    `BATCH_GET_MAX` keys; unprocessed keys are asked again after a growing wait.

    Example:
        >>> batch_get(dynamodb, "spawn-arrays", [{"array_id": {"S": "a"}}], consistent=True)
        [{'array_id': {'S': 'a'}, ...}]
    """
    items: list[dict[str, Any]] = []
    for chunk in chunked(keys, BATCH_GET_MAX):
        wanted: dict[str, Any] = {"Keys": list(chunk)}
        if consistent:
            wanted["ConsistentRead"] = True
        request: dict[str, Any] = {table: wanted}
        delay = BACKOFF_FIRST_SECONDS
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            items.extend(response["Responses"].get(table, []))
            request = dict(response.get("UnprocessedKeys") or {})
            if request:
                sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
    return items
