"""Alerts the system sends (SPEC §8): one publisher for every kind.

Each alert has a readable `Subject` (≤ 100 characters, as SNS allows), a JSON body and
message attributes `event_type`, `severity` and `array_id`, so subscribers can filter
with SNS filter policies, e.g. `{"event_type": ["spot_interruption"]}`. Each alert sent
is also kept in the alert feed (`GET /alerts`, `chalicelib.alerts.feed`) by the publisher
itself; a feed write that fails is logged and never fails the send.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.fleet.events import iso

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger(__name__)

SOURCE = "spawn-fleet-monitor"
SUBJECT_MAX = 100
NO_ARRAY = "none"
SEVERITIES = frozenset({"info", "warning", "critical"})
EVENT_TYPES = frozenset(
    {
        "spot_interruption",
        "array_finished",
        "array_failing",
        "workers_stalled",
        "fleet_unhealthy",
        "array_budget",
        "array_launch_failures",
    }
)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes:
        event_type: one of `EVENT_TYPES`.
        severity: `info`, `warning` or `critical`.
        subject: one line a person reads first (trimmed to 100 printable characters).
        details: JSON-serialisable facts for programs and people.
        array_id: the array concerned, if any.
        time: when it happened (default now).
        owner: whose instance it concerns (`spawn:iam-user`, canonical), if known: the
            alert then also goes into that owner's feed.
        dedupe_key: what makes this alert one, beside its type, array, instance and
            time (e.g. the interruption it reports); retries carrying the same are one
            feed entry.
    """

    event_type: str
    severity: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)
    array_id: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    owner: str | None = None
    dedupe_key: str | None = None

    @property
    def instance_id(self) -> str | None:
        """The instance concerned, when the details name one."""
        value = self.details.get("instance_id")
        return value if isinstance(value, str) and value else None

    def __post_init__(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown alert event_type {self.event_type!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown alert severity {self.severity!r}")


def subject_line(text: str) -> str:
    """SNS subjects must be printable ASCII on one line, at most 100 characters."""
    flat = _UNPRINTABLE.sub(" ", text).strip() or "spawn-fleet-monitor alert"
    return flat if len(flat) <= SUBJECT_MAX else flat[: SUBJECT_MAX - 3].rstrip() + "..."


def publish_request(alert: Alert, topic_arn: str) -> dict[str, Any]:
    """The exact SNS `Publish` request for an alert."""
    body = {
        "source": SOURCE,
        "event_type": alert.event_type,
        "severity": alert.severity,
        "array_id": alert.array_id,
        "time": iso(alert.time),
        "summary": alert.subject,
        "details": dict(alert.details),
    }
    attributes = {
        "event_type": alert.event_type,
        "severity": alert.severity,
        "array_id": alert.array_id or NO_ARRAY,
    }
    return {
        "TopicArn": topic_arn,
        "Subject": subject_line(alert.subject),
        "Message": json.dumps(body, default=str, sort_keys=True),
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    }


def is_own_alert(message: str) -> bool:
    """Whether an SNS message body is an alert this system published."""
    try:
        body = json.loads(message)
    except (TypeError, ValueError):
        return False
    return isinstance(body, dict) and body.get("source") == SOURCE


class AlertStore(Protocol):
    """Where sent alerts are kept (`chalicelib.alerts.feed.AlertHistory`)."""

    def add_alert(self, alert: Alert, topic_arn: str, owner: str | None) -> None: ...


@dataclass
class AlertPublisher:
    """Publishes alerts to the alerts topic, or the critical topic for `critical` ones,
    and keeps each one sent in the alert feed.

    Args:
        sns: an SNS client.
        alerts_topic_arn: `spawn-alerts`.
        critical_topic_arn: `spawn-critical`.
        feed: where sent alerts are kept (None: nowhere).
        array_owner: the owner of an array, for an alert that names an array but no
            owner (None when unknown).
    """

    sns: SNSClient
    alerts_topic_arn: str
    critical_topic_arn: str
    feed: AlertStore | None = None
    array_owner: Callable[[str], str | None] | None = None

    def publish(self, alert: Alert) -> str:
        topic = self.critical_topic_arn if alert.severity == "critical" else self.alerts_topic_arn
        response = self.sns.publish(**publish_request(alert, topic))
        logger.info(
            "alert sent",
            extra={
                "event_type": alert.event_type,
                "severity": alert.severity,
                "array_id": alert.array_id,
            },
        )
        self._keep(alert, topic)
        return response["MessageId"]

    def _keep(self, alert: Alert, topic: str) -> None:
        """Store a sent alert in the feed; a failure is logged, the send stands."""
        if self.feed is None:
            return
        try:
            owner = alert.owner
            if owner is None and alert.array_id and self.array_owner is not None:
                owner = self.array_owner(alert.array_id)
            self.feed.add_alert(alert, topic, owner)
        except Exception as exc:  # the alert is sent; the feed only keeps a copy
            logger.error(
                "alert sent but not kept in the alert feed",
                extra={
                    "event_type": alert.event_type,
                    "array_id": alert.array_id,
                    "error": type(exc).__name__,
                },
            )
