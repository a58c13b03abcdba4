from __future__ import annotations

import json

import pytest

from chalicelib.alerts.publish import Alert, is_own_alert, publish_request, subject_line


def test_publish_request_carries_subject_body_and_filterable_attributes() -> None:
    alert = Alert("spot_interruption", "warning", "Spot interruption: i-1", {"x": 1}, "arr-1")
    request = publish_request(alert, "arn:aws:sns:us-east-1:123456789012:spawn-alerts")
    assert request["Subject"] == "Spot interruption: i-1"
    body = json.loads(request["Message"])
    assert body["event_type"] == "spot_interruption"
    assert body["details"] == {"x": 1}
    assert body["time"].endswith("Z")
    assert request["MessageAttributes"] == {
        "event_type": {"DataType": "String", "StringValue": "spot_interruption"},
        "severity": {"DataType": "String", "StringValue": "warning"},
        "array_id": {"DataType": "String", "StringValue": "arr-1"},
    }
    assert is_own_alert(request["Message"])


def test_subject_is_one_printable_line_of_at_most_100_characters() -> None:
    line = subject_line("Array \u2705 done\nsecond line " + "x" * 200)
    assert len(line) == 100
    assert "\n" not in line
    assert line.isascii()
    assert line.endswith("...")


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="event_type"):
        Alert("coffee_low", "info", "s")
    with pytest.raises(ValueError, match="severity"):
        Alert("array_finished", "meh", "s")


def test_other_messages_are_not_own_alerts() -> None:
    assert not is_own_alert("not json")
    assert not is_own_alert(json.dumps({"AlarmName": "x"}))
