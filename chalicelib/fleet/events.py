"""Parsing of the EC2 events EventBridge delivers (SPEC §3).

Parsing is strict at the edge: an event that does not have AWS's shape raises
`MalformedEvent` with a message saying what is wrong, and the caller logs it and
moves on. Only `detail.instance-id` is trusted for the instance, never the ARN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The SPEC's time format is defined once, beside the row contract the workers' kit
# shares; re-exported here, where the backend has always imported it from.
from chalicelib.contract.rows import epoch_ms as epoch_ms
from chalicelib.contract.rows import iso as iso
from chalicelib.contract.rows import iso_ms as iso_ms

STATE_CHANGE = "EC2 Instance State-change Notification"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"

# Where a state sits in an instance's life; breaks ties between events stamped in the
# same second (EventBridge times have one-second resolution).
STATE_RANK = {
    "pending": 0,
    "running": 1,
    "stopping": 2,
    "stopped": 3,
    "shutting-down": 4,
    "terminated": 5,
}
SPOT_ACTIONS = frozenset({"terminate", "stop", "hibernate"})
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class MalformedEvent(ValueError):
    """The event does not have the shape AWS sends; the message says why."""


@dataclass(frozen=True, order=True)
class StateChange:
    """One `EC2 Instance State-change Notification`, ordered by (time, state rank)."""

    time: datetime
    rank: int
    instance_id: str
    state: str
    event_id: str

    @property
    def epoch_ms(self) -> int:
        return epoch_ms(self.time)


@dataclass(frozen=True)
class SpotWarning:
    instance_id: str
    action: str
    time: datetime
    event_id: str


@dataclass(frozen=True)
class Rebalance:
    instance_id: str
    time: datetime
    event_id: str


def parse_time(value: object) -> datetime:
    """An ISO-8601 time from an event, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise MalformedEvent(f"time {value!r} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"time {value!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"time {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _envelope(event: Any, detail_type: str) -> tuple[Mapping[str, Any], datetime, str, str]:
    if not isinstance(event, Mapping):
        raise MalformedEvent("event is not a JSON object")
    if event.get("source") != "aws.ec2" or event.get("detail-type") != detail_type:
        raise MalformedEvent(
            f"expected source aws.ec2 and detail-type {detail_type!r}, got "
            f"{event.get('source')!r} / {event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("detail is missing or not an object")
    instance_id = detail.get("instance-id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise MalformedEvent(f"detail.instance-id {instance_id!r} is not an instance id")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("id is missing")
    return detail, parse_time(event.get("time")), instance_id, event_id


def parse_state_change(event: Any) -> StateChange:
    """Parse an `EC2 Instance State-change Notification`.

    Example:
        >>> parse_state_change(json.load(open("events/ec2-state-change-running.json"))).state
        'running'
    """
    detail, time, instance_id, event_id = _envelope(event, STATE_CHANGE)
    state = detail.get("state")
    if state not in STATE_RANK:
        raise MalformedEvent(f"detail.state {state!r} is not an EC2 instance state")
    return StateChange(time, STATE_RANK[state], instance_id, state, event_id)


def parse_spot_warning(event: Any) -> SpotWarning:
    """Parse an `EC2 Spot Instance Interruption Warning`."""
    detail, time, instance_id, event_id = _envelope(event, SPOT_WARNING)
    action = detail.get("instance-action")
    if action not in SPOT_ACTIONS:
        raise MalformedEvent(
            f"detail.instance-action {action!r} is not one of {sorted(SPOT_ACTIONS)}"
        )
    return SpotWarning(instance_id, action, time, event_id)


def parse_rebalance(event: Any) -> Rebalance:
    """Parse an `EC2 Instance Rebalance Recommendation`."""
    _, time, instance_id, event_id = _envelope(event, REBALANCE)
    return Rebalance(instance_id, time, event_id)


def latest_per_instance(changes: list[StateChange]) -> dict[str, StateChange]:
    """The newest state change of each instance; duplicates and stale ones fall away."""
    latest: dict[str, StateChange] = {}
    for change in changes:
        current = latest.get(change.instance_id)
        if current is None or (change.time, change.rank) > (current.time, current.rank):
            latest[change.instance_id] = change
    return latest
