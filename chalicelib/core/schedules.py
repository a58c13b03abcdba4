"""One run at a time for each scheduled function, through a lease in the stats table.

Schedules fire whether or not the last run has ended, and reserved concurrency would
take from the account's pool; so each run takes a lease (one conditional write) held
for the function's timeout, skips when it is held, and gives it back when done.
Details: docs/architecture.md ("One run at a time per scheduled function").

Example:
    >>> lease = ScheduleLease(dynamodb, "spawn-fleet-stats", "progress_tick", hold_seconds=60)
    >>> with lease.held() as mine:
    ...     if mine:
    ...         tick()
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.core.batching import conditional_check_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

LEASE_KEY = "schedule-lease#{name}"


class ScheduleLease:
    """Keeps the runs of one scheduled function from overlapping, across processes.

    Args:
        dynamodb: a DynamoDB client.
        table: the table holding the lease item (`STATS_TABLE`, key `key`).
        name: the scheduled function's name (one lease each).
        hold_seconds: how long a lease lasts unless given back: the function's timeout.
        clock: epoch seconds, the same on every host (default `time.time`).
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        name: str,
        hold_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if hold_seconds <= 0:
            raise ValueError("hold_seconds must be positive")
        self.dynamodb = dynamodb
        self.table = table
        self.name = name
        self.key = {"key": {"S": LEASE_KEY.format(name=name)}}
        self.hold_ms = int(hold_seconds * 1000)
        self._clock = clock

    def acquire(self) -> str | None:
        """Take the lease: a token to give it back with, or None while another run holds it."""
        now_ms = int(self._clock() * 1000)
        token = uuid.uuid4().hex
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET held_until_ms = :until, holder = :token",
                ConditionExpression="attribute_not_exists(held_until_ms) OR held_until_ms < :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now_ms + self.hold_ms)},
                    ":token": {"S": token},
                    ":now": {"N": str(now_ms)},
                },
            )
        except ClientError as exc:
            if not conditional_check_failed(exc):
                raise
            return None
        return token

    def release(self, token: str) -> None:
        """Give the lease back, if it is still this run's (an expired one may be another's)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="REMOVE held_until_ms, holder",
                ConditionExpression="holder = :token",
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ClientError as exc:
            if not conditional_check_failed(exc):
                raise

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Run the block with the lease: yields whether this run holds it."""
        token = self.acquire()
        if token is None:
            logger.warning(
                "scheduled run skipped: the previous run still holds its lease",
                extra={"schedule": self.name},
            )
            yield False
            return
        try:
            yield True
        finally:
            self.release(token)
