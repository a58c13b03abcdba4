"""How Lambda hands events to a function, as rules on plain data.

The local stack (moto's queues and streams, wall time) and the chaos replay (its own
queues, virtual time) both deliver by these rules, so they deliver alike: a batch goes
when full or when its oldest event has waited the batching window; the function's
partial-batch response names what failed, a crash fails it all; an SQS batch deletes
the rest, a stream shard resumes at its earliest failed record; an asynchronous
invocation is retried twice, then goes to the failure destination.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

# Lambda's asynchronous invocations (EventInvokeConfig's default MaximumRetryAttempts),
# and about how long it waits before each retry.
ASYNC_RETRIES = 2
ASYNC_RETRY_DELAYS = (60.0, 120.0)


def batch_due(count: int, size: int, oldest: float, window: float, now: float) -> bool:
    """Whether a batch of `count` waiting events goes now: it is full (`size`), or its
    oldest event, waiting since `oldest`, has waited the batching `window` by `now`.

    >>> batch_due(3, 10, oldest=100.0, window=20.0, now=110.0)
    False
    >>> batch_due(3, 10, oldest=100.0, window=20.0, now=120.0)
    True
    """
    return count > 0 and (count >= size or oldest + window <= now)


def reported_failures(response: Any) -> list[str]:
    """The item identifiers a function's partial-batch response names, in its order;
    a response without `batchItemFailures` (None, a plain result) names none."""
    if not isinstance(response, dict):
        return []
    return [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]


def sqs_settle[T](
    batch: Sequence[T], key: Callable[[T], str], failed: Collection[str] | None
) -> tuple[list[T], list[T]]:
    """An SQS batch after its invocation, as (deleted, back on the queue): the messages
    `failed` names come back after the visibility timeout, the rest are deleted; a
    crashed invocation (`failed` None) deletes nothing."""
    if failed is None:
        return [], list(batch)
    done = [m for m in batch if key(m) not in failed]
    again = [m for m in batch if key(m) in failed]
    return done, again


def stream_resume(sequences: Sequence[str], failed: Sequence[str] | None) -> int:
    """How many records at the head of a stream batch (their sequence numbers, in shard
    order) are done: all if none failed; those before the earliest failed one (Lambda
    checkpoints at the lowest reported); none if the invocation crashed (`failed` None)
    or a failure names no record of the batch (Lambda retries the whole batch)."""
    if failed is None:
        return 0
    if not failed:
        return len(sequences)
    if any(f not in sequences for f in failed):
        return 0
    return min(sequences.index(f) for f in failed)


def async_retry_delay(attempts: int) -> float | None:
    """How long Lambda waits before retrying an asynchronous invocation that has failed
    `attempts` times; None once it gives up (to the on-failure destination)."""
    if attempts > ASYNC_RETRIES:
        return None
    return ASYNC_RETRY_DELAYS[attempts - 1]
