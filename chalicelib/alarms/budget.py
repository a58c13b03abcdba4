"""One account-wide budget for alarm writes, shared by every process through DynamoDB.

CloudWatch's alarm-write quota is per account, and the writers run in different Lambda
processes, so a limiter in each could not keep their sum under it. Writers instead
lease call slots `1 / rate` apart from one stats-table item per operation, with a
conditional write; nothing is locked. Details: docs/architecture.md ("One alarm budget
for the account").

Example:
    >>> budget = AccountBudget(dynamodb, "spawn-fleet-stats", "PutMetricAlarm", 3.0)
    >>> budget.reserve(4)   # four calls coming: one lease of four slots
    >>> budget.acquire()    # waits for the first slot
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.core.batching import conditional_check_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

# Slots leased at once: two seconds of the default quota. More saves DynamoDB calls but
# lets a writer that stops early waste more of the account's time.
LEASE_CALLS = 6
BUDGET_KEY = "alarm-budget#{operation}"
_US = 1_000_000


class AccountBudget:
    """Paces one CloudWatch operation under the account's quota, across processes.

    Args:
        dynamodb: a DynamoDB client.
        table: the table holding the budget item (`STATS_TABLE`, key `key`).
        operation: the quota it paces, e.g. `PutMetricAlarm` (one item each).
        rate: the account's quota in calls per second (`ALARM_API_TPS`).
        lease: most slots leased at once (default `LEASE_CALLS`).
        clock: epoch seconds, the same on every host (default `time.time`).
        sleep: how to wait (default `time.sleep`).
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        operation: str,
        rate: float,
        lease: int = LEASE_CALLS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or lease < 1:
            raise ValueError("rate must be positive and lease at least 1")
        self.dynamodb = dynamodb
        self.table = table
        self.key = BUDGET_KEY.format(operation=operation)
        self._rate = rate
        self.lease = lease
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._wanted = 0
        self.leases = 0  # leases taken, for logs and benchmarks

    @property
    def rate(self) -> float:
        return self._rate

    def reserve(self, calls: int) -> None:
        """`calls` more calls are coming: lease up to that many slots at a time."""
        self._wanted = max(self._wanted, calls)

    def acquire(self) -> None:
        """Wait for this process's next slot, leasing more when none is left."""
        if not self._slots:
            self._take(max(1, min(self.lease, self._wanted)))
        slot = self._slots.popleft()
        self._wanted = max(0, self._wanted - 1)
        wait = slot - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _take(self, calls: int) -> None:
        step = _US / self._rate
        while True:
            item = self.dynamodb.get_item(
                TableName=self.table, Key={"key": {"S": self.key}}, ConsistentRead=True
            ).get("Item", {})
            held = int(item["next_slot_us"]["N"]) if "next_slot_us" in item else None
            start = max(held or 0, int(self._clock() * _US))
            # Whole microseconds, rounded up: slots never closer than `1 / rate`.
            end = start + math.ceil(calls * step)
            condition = (
                "attribute_not_exists(next_slot_us)" if held is None else "next_slot_us = :held"
            )
            values = {":end": {"N": str(end)}}
            if held is not None:
                values[":held"] = {"N": str(held)}
            try:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key={"key": {"S": self.key}},
                    UpdateExpression="SET next_slot_us = :end",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if not conditional_check_failed(exc):
                    raise
                continue  # another writer leased first: read its end and start after it
            self.leases += 1
            self._slots.extend((start + math.ceil(i * step)) / _US for i in range(calls))
            return
