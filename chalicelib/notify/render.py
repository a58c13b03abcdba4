"""A notice as each kind of destination takes it: one `HttpRequest` per (notice, destination).

`render(notice, destination, now)` picks the kind's format. The generic webhook's body and
signature are SPEC §17's: headers `X-Spawn-Timestamp` (epoch seconds) and
`X-Spawn-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`, which a receiver
checks with `verify_signature` (and refuses when the timestamp is older than its
tolerance, against replay). Every format cuts what is too long for its service rather
than have the post refused.

    >>> request = render(notice, destination, datetime.now(UTC))
    >>> request.headers["Content-Type"]
    'application/json'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.notify.model import Destination, HttpRequest, Notice

JSON = "application/json"
TIMESTAMP_HEADER = "X-Spawn-Timestamp"
SIGNATURE_HEADER = "X-Spawn-Signature"
NOTICE_HEADER = "X-Spawn-Notice"
# A receiver refuses a signed body older than this (the default of `verify_signature`).
REPLAY_TOLERANCE_SECONDS = 300
# Discord: a message's `content` holds at most 2,000 characters.
DISCORD_CONTENT_MAX = 2000
# Slack: `text` is cut by Slack past 40,000 characters; keep well under.
SLACK_TEXT_MAX = 3000


def render(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    """The POST that delivers `notice` to `destination` at `now`."""
    return _FORMATS[destination.kind](notice, destination, now)


def webhook_body(notice: Notice) -> dict[str, Any]:
    """The generic webhook's JSON body (SPEC §17)."""
    return {
        "kind": notice.kind,
        "array_id": notice.array_id,
        "event_type": notice.event_type,
        "severity": notice.severity,
        "count": notice.count,
        "subject": notice.subject,
        "text": notice.text,
        "details": _webhook_details(notice),
    }


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    key: str,
    timestamp: str,
    body: bytes,
    presented: str,
    now: float,
    tolerance: float = REPLAY_TOLERANCE_SECONDS,
) -> bool:
    """Whether a generic webhook's POST is genuine and fresh (what a receiver checks)."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(signature(key, timestamp, body), presented)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def _webhook(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    assert destination.signing_key is not None  # parse_destination requires one
    body = _encode(webhook_body(notice))
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": JSON,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(destination.signing_key, timestamp, body),
        NOTICE_HEADER: notice.notice_id,
    }
    return HttpRequest(destination.url, headers, body)


def _slack(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    text = cut(f"*{notice.subject}*\n{notice.text}", SLACK_TEXT_MAX)
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode({"text": text}))


def _discord(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    content = cut(f"**{notice.subject}**\n{notice.text}", DISCORD_CONTENT_MAX)
    body = {"content": content, "allowed_mentions": {"parse": []}}
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode(body))


def _teams(notice: Notice, destination: Destination, now: datetime) -> HttpRequest:
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": notice.subject, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": notice.text, "wrap": True},
        ],
    }
    body = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    return HttpRequest(destination.url, {"Content-Type": JSON}, _encode(body))


def _webhook_details(notice: Notice) -> dict[str, Any]:
    details: dict[str, Any] = dict(notice.details)
    details.setdefault("notice_id", notice.notice_id)
    if notice.array_name:
        details.setdefault("array_name", notice.array_name)
    if notice.first_at:
        details.setdefault("first_at", notice.first_at.isoformat())
    if notice.last_at:
        details.setdefault("last_at", notice.last_at.isoformat())
    if notice.window_seconds is not None:
        details.setdefault("window_seconds", notice.window_seconds)
    if notice.breakdowns:
        details.setdefault(
            "breakdowns", {k: [list(pair) for pair in v] for k, v in notice.breakdowns.items()}
        )
    if notice.links:
        details.setdefault("links", dict(notice.links))
    return details


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=str, ensure_ascii=False, separators=(",", ":")).encode()


_FORMATS: dict[str, Callable[[Notice, Destination, datetime], HttpRequest]] = {
    "webhook": _webhook,
    "slack": _slack,
    "discord": _discord,
    "teams": _teams,
}
