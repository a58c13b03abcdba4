"""The alert feed (`GET /alerts`): alarm changes and sent alerts, newest first.

Two kinds of entry, one sort key (the time first): `alarm` (a state change seen on the
alert topics) and `system` (an alert this system sent, kept by `AlertPublisher`). One
feed (a DynamoDB partition) for the fleet, plus one per owner (`spawn:iam-user`) for
entries whose owner is known, so `GET /alerts` reads one partition whoever asks
(`chalicelib.core.access`). Filters read at most `FILTER_BUDGET` entries. Entries
expire after `ALERT_RETENTION_DAYS`. Details: docs/api.md ("The alert feed").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.alarms.fleet_query import check_of
from chalicelib.alerts.publish import Alert, subject_line
from chalicelib.fleet.events import epoch_ms, iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FEED = "alarm-changes"
KINDS = ("alarm", "system")
# A filtered read evaluates at most this many of the newest entries (pages of `PAGE`).
FILTER_BUDGET = 500
PAGE = 100
_INTERNAL = ("feed", "seen_at", "expires_at")
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


@dataclass(frozen=True)
class AlertFilter:
    """What `GET /alerts` narrows to; None matches anything."""

    kind: str | None = None
    event_type: str | None = None
    array_id: str | None = None
    severity: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.kind or self.event_type or self.array_id or self.severity)

    def matches(self, entry: dict[str, Any]) -> bool:
        wanted = {
            "kind": self.kind,
            "event_type": self.event_type,
            "array_id": self.array_id,
            "severity": self.severity,
        }
        return all(value is None or entry.get(key) == value for key, value in wanted.items())


def alarm_severity(new_state: Any, topic: Any, critical_topic: str) -> str:
    """An alarm change's severity: `info` for a return to OK, `critical` for a change
    seen on the critical topic, else `warning`."""
    if new_state == "OK":
        return "info"
    return "critical" if topic == critical_topic else "warning"


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
        critical_topic: str = "spawn-critical",
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.retention = retention
        self.clock = clock
        self.critical_topic = critical_topic

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
        self._put(entry, owner)

    def add_alert(self, alert: Alert, topic_arn: str, owner: str | None) -> None:
        """Keep an alert this system sent in the fleet's feed, and in `owner`'s.

        The sort key is the alert's identity (time, type, array, instance, dedupe key),
        so a retried send overwrites its own entry."""
        array_id, instance_id = alert.array_id or "-", alert.instance_id or "-"
        key = f"{iso(alert.time)}#system#{alert.event_type}#{array_id}#{instance_id}"
        if alert.dedupe_key:
            key += f"#{alert.dedupe_key}"
        entry = {
            "seen_at": key,
            "kind": "system",
            "at": iso(alert.time),
            "event_type": alert.event_type,
            "severity": alert.severity,
            "subject": subject_line(alert.subject),
            "array_id": alert.array_id,
            "instance_id": alert.instance_id,
            "details": _storable(alert.details),
            "topic": topic_arn.rsplit(":", 1)[-1],
            "expires_at": int((self.clock() + self.retention).timestamp()),
        }
        self._put(entry, owner)

    def _put(self, entry: dict[str, Any], owner: str | None) -> None:
        item = {k: _serialize(v) for k, v in entry.items() if v is not None}
        for feed in (FEED, owner_feed(owner)) if owner else (FEED,):
            self.dynamodb.put_item(TableName=self.table, Item={**item, "feed": {"S": feed}})

    def latest(
        self, limit: int, owner: str | None = None, only: AlertFilter | None = None
    ) -> list[dict[str, Any]]:
        """The `limit` newest entries of the fleet's feed, or of `owner`'s, that match
        `only`: one Query of `limit` items without a filter; with one, pages of `PAGE`
        until `limit` match or `FILTER_BUDGET` entries were read."""
        feed = FEED if owner is None else owner_feed(owner)
        only = only or AlertFilter()
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "feed = :feed",
            "ExpressionAttributeValues": {":feed": {"S": feed}},
            "ScanIndexForward": False,
        }
        entries: list[dict[str, Any]] = []
        read = 0
        while len(entries) < limit and read < FILTER_BUDGET:
            page = limit if only.empty else min(PAGE, FILTER_BUDGET - read)
            response = self.dynamodb.query(**request, Limit=page)
            items = response.get("Items", [])
            read += len(items)
            for item in items:
                entry = self._entry(item)
                if only.matches(entry) and len(entries) < limit:
                    entries.append(entry)
            last = response.get("LastEvaluatedKey")
            if only.empty or not last:
                break
            request["ExclusiveStartKey"] = last
        return entries

    def _entry(self, item: dict[str, Any]) -> dict[str, Any]:
        row = {k: _deserialize(v) for k, v in item.items() if k not in _INTERNAL}
        if row.get("kind") != "system":
            row["kind"] = "alarm"
            row.setdefault("at", row.get("changed_at"))
            row.setdefault(
                "severity",
                alarm_severity(row.get("new_state"), row.get("topic"), self.critical_topic),
            )
        plain: dict[str, Any] = _plain(row)
        return plain


def _storable(details: Any) -> dict[str, Any] | None:
    """An alert's details as DynamoDB stores them (numbers as Decimal), or None when they
    hold what JSON cannot (NaN, infinity): the entry is kept without them."""
    try:
        text = json.dumps(dict(details), default=str, allow_nan=False)
    except ValueError:
        return None
    stored: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return stored


def _plain(value: Any) -> Any:
    """DynamoDB's numbers (Decimal) as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
