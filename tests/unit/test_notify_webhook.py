"""The generic webhook's POST is SPEC §17's: its body, and a signature a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from chalicelib.notify.model import Destination, Notice
from chalicelib.notify.render import render, verify_signature

KEY = "0123456789abcdef-key"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_body_and_signature_follow_the_contract() -> None:
    notice = Notice("n1", "alert", "spot_interruption", "warning", "3 interrupted", "text", 3)
    destination = Destination("hook", "webhook", "https://example.com/h", signing_key=KEY)

    request = render(notice, destination, NOW)

    body = json.loads(request.body)
    assert set(body) == {
        "kind", "array_id", "event_type", "severity", "count", "subject", "text", "details"
    }  # fmt: skip
    assert (body["kind"], body["count"], body["event_type"]) == ("alert", 3, "spot_interruption")
    timestamp = request.headers["X-Spawn-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(KEY.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["X-Spawn-Signature"] == "sha256=" + expected.hexdigest()
    signed = request.headers["X-Spawn-Signature"]
    assert verify_signature(KEY, timestamp, request.body, signed, NOW.timestamp() + 10)
    assert not verify_signature(KEY, timestamp, request.body + b" ", signed, NOW.timestamp())
    assert not verify_signature(
        "another-key-000000", timestamp, request.body, signed, 0 + NOW.timestamp()
    )
    # A replay: the same POST ten minutes later is refused.
    assert not verify_signature(KEY, timestamp, request.body, signed, NOW.timestamp() + 600)
