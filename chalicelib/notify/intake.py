"""What arrives on the notify queue, read into what the rollup counts.

The queue (`NOTIFY_QUEUE`, `spawn-notify`) is subscribed to both alert topics, so each
message is an SNS envelope (`{"Type": "Notification", "TopicArn", "Message", ...}`)
holding an alert this system sent (SPEC §8) or a CloudWatch alarm notification; the
rollup's own timers (`{"notify_flush": KEY}`) come on the same queue. `read_message`
turns one into a `Signal` (one alert, or one alarm change of a known instance), a
`Flush`, or raises `Unreadable` with a reason that never quotes the message.

    >>> read_message(body, instance_of=registry.get, critical_topic="spawn-critical")
    Signal(signal_id='9f…', event_type='spot_interruption', ...)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.alerts.feed import alarm_severity
from chalicelib.alerts.notifications import NotAnAlarmNotification, parse_notification
from chalicelib.alerts.publish import EVENT_TYPES, SEVERITIES, SOURCE

FLUSH_FIELD = "notify_flush"
# Alarm state changes of per-instance (and fleet query) alarms, as chat event type.
ALARM_CHANGE = "alarm_change"
# The breakdowns a signal may carry, from an alert's details (SPEC §17).
_ALERT_BREAKDOWNS = {
    "zone": "availability_zone",
    "instance_type": "instance_type",
    "error_code": "code",
}
# ... and those of an alarm change, from its instance's registry row.
_INSTANCE_BREAKDOWNS = {"zone": "availability_zone", "instance_type": "instance_type"}
SUBJECT_MAX = 300


class Unreadable(ValueError):
    """A message the notifier cannot use; the text says why (never the message)."""


@dataclass(frozen=True)
class Signal:
    """One alert or alarm change, as the rollup counts it.

    Attributes:
        signal_id: the same for every copy of it (SNS and a retried send repeat them).
        event_type: the alert's type, or `alarm_change`.
        severity: `info`, `warning` or `critical`.
        subject: the alert's own one line.
        at: when it happened.
        array_id, owner: what it concerns, when known.
        weight: how many events it stands for (a launch-failure alert counts its
            failures; anything else is one).
        breakdown: `zone`, `instance_type`, `error_code` -> its value, where known.
        details: the alert's details (the array report reads an `array_finished`'s).
        state: an alarm change's new state (`ALARM`, `OK`, ...); None for an alert.
    """

    signal_id: str
    event_type: str
    severity: str
    subject: str
    at: datetime
    array_id: str | None = None
    owner: str | None = None
    weight: int = 1
    breakdown: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    state: str | None = None

    @property
    def group(self) -> str:
        """What signals roll up together by: the array and the kind (an alarm change's
        kind includes its new state)."""
        kind = f"{self.event_type}:{self.state}" if self.state else self.event_type
        return f"{self.array_id or '-'}#{kind}"


@dataclass(frozen=True)
class Flush:
    """A rollup timer: the bucket `key` is due."""

    key: str


def read_message(
    body: str,
    instance_of: Callable[[str], Mapping[str, Any] | None],
    critical_topic: str,
) -> Signal | Flush | None:
    """One message of the notify queue. None: nothing to say (an alarm change of an
    instance this system does not manage). Raises `Unreadable`."""
    document = _json_object(body, "the message")
    if FLUSH_FIELD in document:
        key = document[FLUSH_FIELD]
        if not isinstance(key, str) or not key.startswith("notify-bucket#"):
            raise Unreadable("a flush timer without a bucket key")
        return Flush(key)
    message = document.get("Message")
    if not isinstance(message, str):
        raise Unreadable("not an SNS notification (no Message)")
    topic = str(document.get("TopicArn") or "").rsplit(":", 1)[-1]
    inner = _json_object(message, "the SNS message")
    if inner.get("source") == SOURCE:
        return _alert(inner)
    return _alarm_change(message, topic, instance_of, critical_topic)


def _alert(body: Mapping[str, Any]) -> Signal:
    event_type, severity = body.get("event_type"), body.get("severity")
    if event_type not in EVENT_TYPES or severity not in SEVERITIES:
        raise Unreadable("an alert of an unknown event_type or severity")
    details = body.get("details") if isinstance(body.get("details"), Mapping) else {}
    assert isinstance(details, Mapping)
    alert_id = body.get("alert_id")
    if not isinstance(alert_id, str) or not alert_id:
        # An alert from before alert ids: its body is its identity.
        alert_id = _digest(json.dumps(body, sort_keys=True, default=str))
    weight = 1
    if event_type == "array_launch_failures":
        weight = _positive_int(details.get("count")) or 1
    breakdown = _breakdown(details, _ALERT_BREAKDOWNS)
    return Signal(
        signal_id=alert_id,
        event_type=str(event_type),
        severity=str(severity),
        subject=str(body.get("summary") or event_type)[:SUBJECT_MAX],
        at=_time(body.get("time")),
        array_id=_text(body.get("array_id")),
        owner=_text(body.get("owner")),
        weight=weight,
        breakdown=breakdown,
        details=details,
    )


def _alarm_change(
    message: str,
    topic: str,
    instance_of: Callable[[str], Mapping[str, Any] | None],
    critical_topic: str,
) -> Signal | None:
    try:
        change = parse_notification(message)
    except NotAnAlarmNotification as exc:
        raise Unreadable(f"neither an alert nor an alarm notification: {exc}") from None
    row: Mapping[str, Any] = {}
    if change.instance_id:
        found = instance_of(change.instance_id)
        if found is None or found.get("managed") is False:
            return None
        row = found
    breakdown = _breakdown(row, _INSTANCE_BREAKDOWNS)
    what = f"{change.instance_id} " if change.instance_id else ""
    return Signal(
        signal_id=_digest(
            f"{change.alarm_name}#{change.new_state}#{change.changed_ms}#{change.instance_id}"
        ),
        event_type=ALARM_CHANGE,
        severity=alarm_severity(change.new_state, topic, critical_topic),
        subject=f"{what}{change.alarm_name} is {change.new_state}"[:SUBJECT_MAX],
        at=change.changed_at,
        array_id=_text(row.get("array_id")),
        owner=_text(row.get("owner")),
        breakdown=breakdown,
        details={"alarm_name": change.alarm_name, "instance_id": change.instance_id},
        state=change.new_state,
    )


def _breakdown(source: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, str]:
    """Breakdown name -> value, for each of `fields` (name -> key) `source` has as text."""
    return {
        name: value
        for name, key in fields.items()
        if isinstance(value := source.get(key), str) and value
    }


def _json_object(text: str, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise Unreadable(f"{what} is not JSON") from None
    if not isinstance(value, Mapping):
        raise Unreadable(f"{what} is not a JSON object")
    return value


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise Unreadable("an alert without a valid time")


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
