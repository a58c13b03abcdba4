"""What the notification pipeline passes between its parts, as plain data.

A `Notice` is one message to people: a rolled-up group of alerts of one array and kind,
one critical alert, an array's report, or a test. It is rendered per `Destination`
(`chalicelib.notify.render`) into an `HttpRequest` at send time. A `DeliveryJob` is
one notice for one destination on the delivery queue. A destination's URL and signing
key are credentials: neither appears in a `repr`, a log line or `describe()`.

    >>> job = DeliveryJob(notice, "ops-slack")
    >>> DeliveryJob.from_json(job.to_json()) == job
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

NoticeKind = Literal["alert", "array_report"]
DestinationKind = Literal["slack", "teams", "discord", "webhook"]
DESTINATION_KINDS: tuple[DestinationKind, ...] = ("slack", "teams", "discord", "webhook")
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
# The breakdowns a rolled-up notice counts by (its `breakdowns` keys).
BREAKDOWNS = ("zone", "instance_type", "error_code")


@dataclass(frozen=True)
class Notice:
    """One message to people, before it is rendered for a destination.

    Attributes:
        notice_id: stable for the same content (a retried flush or report builds the
            same id), so a delivery is claimed once per (notice, destination).
        kind: `alert` (one alert or a rollup of several) or `array_report`.
        event_type: the alerts' type (`spot_interruption`, ...); `array_finished` for a
            report; `notify_test` for `spawn-monitor notify test`.
        severity: `info`, `warning` or `critical`.
        subject: one line a person reads first.
        text: the plain-text message, a few short lines.
        count: how many alerts the notice stands for (1 for a report or a test).
        array_id, array_name, owner: what it concerns, when known (the filters use them).
        first_at, last_at: the first and last alert it counts.
        window_seconds: the rollup window it was gathered over (None: sent at once).
        breakdowns: by `zone`, `instance_type`, `error_code`: (value, count) pairs,
            highest first, complete (renderers cut them to fit).
        facts: (label, value) pairs shown as fields, e.g. ("Tasks", "998 of 1,000").
        items: (label, text) pairs listed below, e.g. ("task 17", "exit 137 ...").
        links: (label, URL) pairs: the array's dashboard, the web view.
        details: JSON-serialisable facts for programs (the generic webhook's `details`).
    """

    notice_id: str
    kind: NoticeKind
    event_type: str
    severity: str
    subject: str
    text: str
    count: int = 1
    array_id: str | None = None
    array_name: str | None = None
    owner: str | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None
    window_seconds: int | None = None
    breakdowns: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)
    facts: Sequence[tuple[str, str]] = ()
    items: Sequence[tuple[str, str]] = ()
    links: Sequence[tuple[str, str]] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "kind": self.kind,
            "event_type": self.event_type,
            "severity": self.severity,
            "subject": self.subject,
            "text": self.text,
            "count": self.count,
            "array_id": self.array_id,
            "array_name": self.array_name,
            "owner": self.owner,
            "first_at": self.first_at.isoformat() if self.first_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "window_seconds": self.window_seconds,
            "breakdowns": {k: [list(pair) for pair in v] for k, v in self.breakdowns.items()},
            "facts": [list(pair) for pair in self.facts],
            "items": [list(pair) for pair in self.items],
            "links": [list(pair) for pair in self.links],
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notice:
        def when(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        def pairs(value: Any) -> tuple[tuple[str, str], ...]:
            return tuple((str(a), str(b)) for a, b in value or ())

        return cls(
            notice_id=str(data["notice_id"]),
            kind=data["kind"],
            event_type=str(data["event_type"]),
            severity=str(data["severity"]),
            subject=str(data["subject"]),
            text=str(data["text"]),
            count=int(data.get("count", 1)),
            array_id=data.get("array_id"),
            array_name=data.get("array_name"),
            owner=data.get("owner"),
            first_at=when(data.get("first_at")),
            last_at=when(data.get("last_at")),
            window_seconds=data.get("window_seconds"),
            breakdowns={
                str(k): tuple((str(name), int(n)) for name, n in v)
                for k, v in (data.get("breakdowns") or {}).items()
            },
            facts=pairs(data.get("facts")),
            items=pairs(data.get("items")),
            links=pairs(data.get("links")),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Destination:
    """One destination from the notify secret (SPEC §17). Filters left None match all.

    Attributes:
        name: unique; what `notify list` and `notify test NAME` show and take.
        kind: `slack`, `teams`, `discord` or `webhook`.
        url: the webhook URL, a credential (never in a repr or a log line).
        signing_key: the generic webhook's HMAC key (webhook only; also secret).
        event_types: only these event types.
        min_severity: only this severity and above.
        array_name: only arrays whose name matches this glob (`fnmatch`).
        owner: only arrays of this owner (`spawn:iam-user`, canonical).
    """

    name: str
    kind: DestinationKind
    url: str = field(repr=False)
    signing_key: str | None = field(default=None, repr=False)
    event_types: frozenset[str] | None = None
    min_severity: str | None = None
    array_name: str | None = None
    owner: str | None = None

    def describe(self) -> dict[str, Any]:
        """Name, kind and filters: what may be shown (never the URL or the key)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "event_types": sorted(self.event_types) if self.event_types is not None else None,
            "min_severity": self.min_severity,
            "array_name": self.array_name,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class HttpRequest:
    """One POST to a destination; the URL is a credential (not in the repr)."""

    url: str = field(repr=False)
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class DeliveryJob:
    """One notice for one destination, as it travels on the delivery queue.

    Attributes:
        notice: what to send.
        destination: the destination's name (looked up again at send time, so a removed
            destination gets nothing and a changed URL is used).
        attempt: tries made so far.
    """

    notice: Notice
    destination: str
    attempt: int = 0

    @property
    def delivery_id(self) -> str:
        """What a delivery is claimed under: one post per (notice, destination)."""
        return f"{self.notice.notice_id}:{self.destination}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "notice": self.notice.to_dict(),
                "destination": self.destination,
                "attempt": self.attempt,
            },
            sort_keys=True,
            default=str,
        )

    @classmethod
    def from_json(cls, body: str) -> DeliveryJob:
        data = json.loads(body)
        return cls(Notice.from_dict(data["notice"]), str(data["destination"]), int(data["attempt"]))
