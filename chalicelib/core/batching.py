"""Batches: slicing a list for APIs with a per-call limit, and DynamoDB's BatchGetItem.

`batch_get` is the one BatchGetItem loop: at most 100 keys a call, and the keys
DynamoDB leaves unprocessed (a partial success, which botocore does not retry) asked
again after a capped exponential backoff with jitter, as AWS advises, for at most
`BATCH_GET_MAX_ATTEMPTS` calls a chunk; then `BatchGetIncomplete` names what is left.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_MAX = 100
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0
BATCH_GET_MAX_ATTEMPTS = 8


class BatchGetIncomplete(RuntimeError):
    """DynamoDB still left keys unprocessed after `BATCH_GET_MAX_ATTEMPTS` calls."""

    def __init__(self, table: str, unprocessed: int, attempts: int) -> None:
        super().__init__(
            f"BatchGetItem on {table} left {unprocessed} keys unprocessed after {attempts} attempts"
        )
        self.table = table
        self.unprocessed = unprocessed
        self.attempts = attempts


def conditional_check_failed(exc: ClientError) -> bool:
    """Whether a DynamoDB write was refused by its condition (another writer came first)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


# A transaction cancelled by a conflicting writer is retried this often, with full jitter.
TRANSACTION_ATTEMPTS = 10
TRANSACT_BASE_SECONDS = 0.025
TRANSACT_CAP_SECONDS = 1.0


def transact_conflicts_retried(
    dynamodb: DynamoDBClient,
    items: Sequence[Mapping[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Run a `TransactWriteItems`; False when its first entry's condition failed (the
    write was done already). Conflicts with other writers are retried, jittered; any
    other cancellation, or conflicts past the attempts, raise."""
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            dynamodb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            return True
        except ClientError as exc:
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            if "TransactionConflict" not in codes or attempt == TRANSACTION_ATTEMPTS - 1:
                raise
            longest = min(TRANSACT_CAP_SECONDS, TRANSACT_BASE_SECONDS * 2**attempt)
            sleep(random.uniform(0, longest))  # noqa: S311 - jitter
    return False


def _full_jitter(delay: float) -> float:
    return random.uniform(delay / 2, delay)  # noqa: S311 (spreads retries, not a secret)


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
    jitter: Callable[[float], float] = _full_jitter,
    max_attempts: int = BATCH_GET_MAX_ATTEMPTS,
) -> list[dict[str, Any]]:
    """The items of `table` at `keys` (absent ones are left out), in calls of at most
    `BATCH_GET_MAX` keys; unprocessed keys are asked again after a growing wait.

    `sleep` waits (default `time.sleep`); `jitter` turns the backoff into the wait
    (default: uniform between half and all of it); `max_attempts` (default 8) bounds the
    calls per chunk, after which `BatchGetIncomplete` is raised.

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
        attempts = 0
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            attempts += 1
            items.extend(response["Responses"].get(table, []))
            request = dict(response.get("UnprocessedKeys") or {})
            if request and attempts >= max_attempts:
                left = sum(len(w.get("Keys", [])) for w in request.values())
                raise BatchGetIncomplete(table, left, attempts)
            if request:
                sleep(jitter(delay))
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
    return items
