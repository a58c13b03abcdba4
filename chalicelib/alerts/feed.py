"""The alert history (`GET /alerts`): every alarm change, newest first, kept a while.

One feed (a DynamoDB partition) for the whole fleet, plus one per owner: a change of an
instance whose registry row names its owner (`spawn:iam-user`) is written to both, so
`GET /alerts` reads one partition whoever asks (per-user isolation,
`chalicelib.core.access`). Entries expire after `ALERT_RETENTION_DAYS`. Not to be
confused with an array's history (`chalicelib.progress.history`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.alarms.fleet_query import check_of
from chalicelib.fleet.events import epoch_ms, iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FEED = "alarm-changes"
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def owner_feed(owner: str) -> str:
    """The history partition of one owner's instances."""
    return f"{FEED}#{owner}"


@dataclass(frozen=True)
class AlarmChange:
    """One alarm state change, as CloudWatch reported it."""

    alarm_name: str
    new_state: str
    old_state: str | None
    reason: str
    changed_at: datetime
    instance_id: str | None
    check: str | None  # `status` or `system` for per-instance alarms

    @property
    def changed_ms(self) -> int:
        return epoch_ms(self.changed_at)


class AlertHistory:
    """The alert history table: newest first, each change stored once.

    The sort key is built from the change itself, so a duplicated notification
    overwrites its own entry instead of adding another.
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        retention: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.retention = retention
        self.clock = clock

    def add(
        self, change: AlarmChange, topic_arn: str, array_id: str | None, owner: str | None = None
    ) -> None:
        """Keep `change` in the fleet's feed, and in `owner`'s when it is known."""
        key = f"{iso(change.changed_at)}#{change.alarm_name}#{change.new_state}"
        if check_of(change.alarm_name) and change.instance_id:
            # One query alarm, many contributors: each instance's change is its own entry
            # (and the SNS and EventBridge copies of it are one).
            key += f"#{change.instance_id}"
        entry = {
            "seen_at": key,
            "alarm_name": change.alarm_name,
            "new_state": change.new_state,
            "old_state": change.old_state,
            "reason": change.reason,
            "changed_at": iso(change.changed_at),
            "instance_id": change.instance_id,
            "check": change.check,
            "array_id": array_id,
            "topic": topic_arn.rsplit(":", 1)[-1],
            "expires_at": int((self.clock() + self.retention).timestamp()),
        }
        item = {k: _serialize(v) for k, v in entry.items() if v is not None}
        for feed in (FEED, owner_feed(owner)) if owner else (FEED,):
            self.dynamodb.put_item(TableName=self.table, Item={**item, "feed": {"S": feed}})

    def latest(self, limit: int, owner: str | None = None) -> list[dict[str, Any]]:
        """The `limit` newest changes of the fleet, or of `owner`'s instances only."""
        feed = FEED if owner is None else owner_feed(owner)
        response = self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="feed = :feed",
            ExpressionAttributeValues={":feed": {"S": feed}},
            ScanIndexForward=False,
            Limit=limit,
        )
        entries = []
        for item in response.get("Items", []):
            row = {k: _deserialize(v) for k, v in item.items()}
            for internal in ("feed", "seen_at", "expires_at"):
                row.pop(internal, None)
            entries.append(row)
        return entries
