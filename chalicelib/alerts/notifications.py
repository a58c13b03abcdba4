"""Alarm notifications consumed from the alert topics, and contributor events.

Each alarm change updates the instance's health (the newest `StateChangeTime` wins) and
goes into the alert history (`chalicelib.alerts.feed`); anything else on the topics is
skipped. In `fleet-query` a contributor's change arrives as an EventBridge event and as
an SNS notification and both become the same `AlarmChange`. Only an EC2-shaped id
counts as an instance. Details: docs/alarm-modes.md and docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.alarms.fleet_query import check_of
from chalicelib.alarms.per_instance import instance_of
from chalicelib.alerts.feed import AlarmChange, AlertHistory
from chalicelib.alerts.publish import is_own_alert
from chalicelib.fleet.registry import Registry

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

ALARM_STATES = frozenset({"OK", "ALARM", "INSUFFICIENT_DATA"})
CONTRIBUTOR_CHANGE = "CloudWatch Alarm Contributor State Change"
CONTRIBUTOR_STATES = frozenset({"OK", "ALARM"})
# Where a contributor event came from, in the history's `topic` field.
CONTRIBUTOR_SOURCE = "eventbridge"
# EC2 instance ids: `i-` and 8 hex digits (older) or 17 (since 2016).
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


class NotAnAlarmNotification(ValueError):
    """The message is not a CloudWatch alarm notification; the text says why."""


def parse_time(value: Any) -> datetime:
    """CloudWatch's `StateChangeTime`, e.g. `2026-01-27T10:15:30.123+0000`."""
    if not isinstance(value, str):
        raise NotAnAlarmNotification("StateChangeTime is missing")
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value.replace("Z", "+0000"), pattern).astimezone(UTC)
        except ValueError:
            continue
    raise NotAnAlarmNotification(f"StateChangeTime {value!r} is not a time")


def parse_notification(message: str) -> AlarmChange:
    """Parse the body of an alarm notification; raises `NotAnAlarmNotification`."""
    try:
        body = json.loads(message)
    except (TypeError, ValueError):
        raise NotAnAlarmNotification("body is not JSON") from None
    if not isinstance(body, Mapping):
        raise NotAnAlarmNotification("body is not a JSON object")
    name = body.get("AlarmName")
    state = body.get("NewStateValue")
    if not isinstance(name, str) or not name or state not in ALARM_STATES:
        raise NotAnAlarmNotification("no AlarmName / NewStateValue")
    old_state = body.get("OldStateValue")
    found = (
        instance_of(name)
        or _attribute(body.get("AlarmContributorAttributes"))
        or _attribute(body.get("ContributorAttributes"))
        or _dimension(body, "InstanceId")
    )
    instance_id = found if is_instance_id(found) else None
    if found is not None and instance_id is None:
        logger.warning(
            "alarm notification names something that is not an instance id",
            extra={"alarm": name[:255], "value": str(found)[:64]},
        )
    return AlarmChange(
        alarm_name=name,
        new_state=state,
        old_state=old_state if old_state in ALARM_STATES else None,
        reason=str(body.get("NewStateReason") or "")[:1000],
        changed_at=parse_time(body.get("StateChangeTime")),
        instance_id=instance_id,
        check=name.rsplit("-", 1)[1] if instance_of(name) else check_of(name),
    )


def parse_contributor_event(event: Mapping[str, Any]) -> AlarmChange:
    """Parse a `CloudWatch Alarm Contributor State Change` event of a fleet query alarm;
    raises `NotAnAlarmNotification` for anything else (another alarm's, or malformed)."""
    detail = event.get("detail") if isinstance(event, Mapping) else None
    if event.get("detail-type") != CONTRIBUTOR_CHANGE or not isinstance(detail, Mapping):
        raise NotAnAlarmNotification("not a contributor state-change event")
    name = detail.get("alarmName")
    check = check_of(name) if isinstance(name, str) else None
    if check is None:
        raise NotAnAlarmNotification(f"alarm {name!r} is not a fleet query alarm")
    contributor = detail.get("alarmContributor")
    state = detail.get("state")
    if not isinstance(contributor, Mapping) or not isinstance(state, Mapping):
        raise NotAnAlarmNotification("no alarmContributor / state")
    instance_id = _attribute(contributor.get("attributes"))
    if not is_instance_id(instance_id) or state.get("value") not in CONTRIBUTOR_STATES:
        raise NotAnAlarmNotification("no contributor InstanceId or ALARM/OK state")
    assert isinstance(name, str)
    return AlarmChange(
        alarm_name=name,
        new_state=str(state["value"]),
        # Contributor events carry no previous state (contributors are ALARM or OK).
        old_state=None,
        reason=str(state.get("reason") or "")[:1000],
        changed_at=parse_time(state.get("timestamp")),
        instance_id=instance_id,
        check=check,
    )


def is_instance_id(value: Any) -> bool:
    """Whether `value` has the shape of an EC2 instance id."""
    return isinstance(value, str) and INSTANCE_ID.fullmatch(value) is not None


def _attribute(attributes: Any) -> str | None:
    if not isinstance(attributes, Mapping):
        return None
    value = attributes.get("InstanceId")
    return value if isinstance(value, str) and value else None


def _dimension(body: Mapping[str, Any], name: str) -> str | None:
    trigger = body.get("Trigger")
    if not isinstance(trigger, Mapping):
        return None
    for dimension in trigger.get("Dimensions") or []:
        if isinstance(dimension, Mapping) and dimension.get("name") == name:
            value = dimension.get("value")
            return value if isinstance(value, str) else None
    return None


@dataclass
class Notifications:
    """Consumes SNS messages from the alert topics.

    Args:
        registry: the instances table (health is kept on each instance's item).
        history: the alert history.
    """

    registry: Registry
    history: AlertHistory

    def handle(self, message: str, topic_arn: str) -> str:
        """Apply one SNS message; returns what it was (for the log)."""
        if is_own_alert(message):
            return "own-alert"
        try:
            change = parse_notification(message)
        except NotAnAlarmNotification as exc:
            logger.warning(
                "skipping a message that is not an alarm notification", extra={"reason": str(exc)}
            )
            return "skipped"
        return self._apply(change, topic_arn)

    def handle_contributor_event(self, event: Mapping[str, Any]) -> str:
        """Apply one `CloudWatch Alarm Contributor State Change` event (EventBridge);
        returns what it was (for the log). Anything else is logged and skipped."""
        try:
            change = parse_contributor_event(event)
        except (NotAnAlarmNotification, AttributeError) as exc:
            logger.warning("skipping a contributor event", extra={"reason": str(exc)})
            return "skipped"
        return self._apply(change, CONTRIBUTOR_SOURCE)

    def _apply(self, change: AlarmChange, source: str) -> str:
        array_id = owner = None
        if change.instance_id and change.check:
            row = self._record_health(change)
            if row.get("managed") is False and check_of(change.alarm_name):
                # The query cannot leave opted-out instances out (see
                # `chalicelib.alarms.fleet_query`): their contributors are not alerts.
                logger.info(
                    "contributor change of an unmanaged instance skipped",
                    extra={"alarm": change.alarm_name, "instance_id": change.instance_id},
                )
                return "unmanaged"
            array_id, owner = _text(row.get("array_id")), _text(row.get("owner"))
        self.history.add(change, source, array_id, owner)
        logger.info(
            "alarm state change",
            extra={
                "alarm": change.alarm_name,
                "state": change.new_state,
                "instance_id": change.instance_id,
            },
        )
        return "recorded"

    def _record_health(self, change: AlarmChange) -> dict[str, Any]:
        """Record the check's state on the instance; returns its registry row (empty for
        an instance not known)."""
        assert change.instance_id is not None
        assert change.check is not None
        state_key, time_key = f"check_{change.check}_state", f"check_{change.check}_ms"
        previous = self.registry.update(
            change.instance_id,
            {state_key: change.new_state, time_key: change.changed_ms},
            # Only for known instances; only a newer change than the one recorded.
            f"attribute_exists(#last_event_ms) AND (attribute_not_exists(#{time_key})"
            f" OR #{time_key} < :{time_key})",
        )
        row = self.registry.get(change.instance_id) if previous is None else previous
        return dict(row or {})


def _text(value: Any) -> str | None:
    return str(value) if value else None
