"""Alarm notifications from the alert topics → instance health and alert history."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.alerts.feed import AlertHistory
from chalicelib.alerts.notifications import Notifications
from chalicelib.alerts.publish import Alert, publish_request
from tests.conftest import load_event
from tests.integration.conftest import T0, Fleet

TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts"


def sample(state: str) -> dict[str, Any]:
    name = {"ALARM": "alarm", "OK": "ok", "INSUFFICIENT_DATA": "insufficient-data"}[state]
    message: dict[str, Any] = json.loads(
        load_event(f"sns-alarm-notification-{name}.json")["Records"][0]["Sns"]["Message"]
    )
    assert message["NewStateValue"] == state
    return message


def notification(instance_id: str, state: str, seconds: int, check: str = "status") -> str:
    message = sample(state)
    message["AlarmName"] = f"spawn-instance-{instance_id}-{check}"
    message["StateChangeTime"] = (T0 + timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000"
    )
    message["Trigger"]["Dimensions"] = [{"value": instance_id, "name": "InstanceId"}]
    return json.dumps(message)


@pytest.fixture
def consumer(fleet: Fleet) -> Notifications:
    history = AlertHistory(
        fleet.clients.dynamodb,
        fleet.settings.alert_history_table,
        timedelta(days=30),
        clock=lambda: T0,
    )
    return Notifications(fleet.registry, history)


@pytest.fixture
def instance(fleet: Fleet) -> str:
    [instance_id] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance_id, "running", T0)])
    return instance_id


def health(fleet: Fleet, instance_id: str) -> tuple[str | None, str | None]:
    row = fleet.registry.get(instance_id) or {}
    return row.get("check_status_state"), row.get("check_system_state")


def test_alarm_then_ok_moves_health_and_both_are_in_the_history(
    fleet: Fleet, consumer: Notifications, instance: str
) -> None:
    assert consumer.handle(notification(instance, "ALARM", 60), TOPIC) == "recorded"
    assert health(fleet, instance) == ("ALARM", None)
    consumer.handle(notification(instance, "OK", 120), TOPIC)
    assert health(fleet, instance) == ("OK", None)
    latest = consumer.history.latest(10)
    assert [(e["new_state"], e["old_state"]) for e in latest] == [("OK", "ALARM"), ("ALARM", "OK")]
    assert latest[0]["instance_id"] == instance
    assert latest[0]["array_id"] == "render-20260127-a1b2c3"
    assert latest[0]["check"] == "status"
    assert latest[0]["changed_at"] == "2026-01-27T10:02:00Z"
    assert latest[0]["topic"] == "spawn-alerts"


def test_insufficient_data_is_recorded_but_is_not_unhealthy(
    fleet: Fleet, consumer: Notifications, instance: str
) -> None:
    consumer.handle(notification(instance, "INSUFFICIENT_DATA", 60, check="system"), TOPIC)
    assert health(fleet, instance) == (None, "INSUFFICIENT_DATA")


def test_duplicates_add_nothing(fleet: Fleet, consumer: Notifications, instance: str) -> None:
    message = notification(instance, "ALARM", 60)
    for _ in range(3):
        consumer.handle(message, TOPIC)
    assert len(consumer.history.latest(10)) == 1
    assert health(fleet, instance) == ("ALARM", None)


def test_reordered_notifications_leave_the_newest_state(
    fleet: Fleet, consumer: Notifications, instance: str
) -> None:
    consumer.handle(notification(instance, "OK", 120), TOPIC)  # the recovery arrives first
    consumer.handle(notification(instance, "ALARM", 60), TOPIC)
    assert health(fleet, instance) == ("OK", None)
    assert [e["new_state"] for e in consumer.history.latest(10)] == ["OK", "ALARM"]


@pytest.mark.parametrize(
    "message",
    [
        "this is not json",
        "",
        "[1, 2, 3]",
        json.dumps({"Type": "SubscriptionConfirmation", "Message": "hello"}),
        json.dumps({"AlarmName": "x", "NewStateValue": "ON_FIRE", "StateChangeTime": "now"}),
        json.dumps({"AlarmName": "x", "NewStateValue": "ALARM", "StateChangeTime": "yesterday"}),
    ],
)
def test_messages_that_are_not_alarm_notifications_are_skipped(
    fleet: Fleet, consumer: Notifications, message: str
) -> None:
    assert consumer.handle(message, TOPIC) == "skipped"
    assert consumer.history.latest(10) == []


def test_our_own_alerts_are_recognised(consumer: Notifications) -> None:
    request = publish_request(Alert("array_finished", "info", "done", array_id="a-1"), TOPIC)
    assert consumer.handle(request["Message"], TOPIC) == "own-alert"
    assert consumer.history.latest(10) == []


def test_fleet_alarm_notifications_are_kept_in_the_history(consumer: Notifications) -> None:
    message = sample("ALARM")
    message.update(AlarmName="spawn-fleet-unhealthy", Trigger={"Dimensions": []})
    consumer.handle(json.dumps(message), TOPIC.replace("spawn-alerts", "spawn-critical"))
    [entry] = consumer.history.latest(10)
    assert entry["alarm_name"] == "spawn-fleet-unhealthy"
    assert "instance_id" not in entry
    assert entry["topic"] == "spawn-critical"


def test_unknown_instance_is_not_invented_in_the_registry(
    fleet: Fleet, consumer: Notifications
) -> None:
    consumer.handle(notification("i-0fedcba9876543210", "ALARM", 60), TOPIC)
    assert fleet.registry.get("i-0fedcba9876543210") is None
    assert len(consumer.history.latest(10)) == 1


def test_history_entries_expire(consumer: Notifications, fleet: Fleet, instance: str) -> None:
    consumer.handle(notification(instance, "ALARM", 60), TOPIC)
    item = fleet.clients.dynamodb.scan(TableName=fleet.settings.alert_history_table)["Items"][0]
    assert int(item["expires_at"]["N"]) == int((T0 + timedelta(days=30)).timestamp())


def test_a_dimension_that_is_not_an_instance_id_is_kept_without_one(
    fleet: Fleet, consumer: Notifications, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The SNS test notification (the Lambda console's "TestInvoke" sample, as published
    # in aws-lambda-go's testdata) names `"InstanceId": "TestInstance"`.
    event = load_event("sns-alarm-notification-test-invoke.json")
    message = event["Records"][0]["Sns"]["Message"]
    with caplog.at_level("WARNING"):
        assert consumer.handle(message, TOPIC) == "recorded"
    [entry] = consumer.history.latest(10)
    assert entry["alarm_name"] == "EXAMPLE"
    assert "instance_id" not in entry
    assert health(fleet, instance) == (None, None)
    [record] = [r for r in caplog.records if "not an instance id" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "NewStateReason" not in record.getMessage()
    assert "Threshold Crossed" not in str(record.__dict__)


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("i-0abcd123", True),  # 8 hex digits
        ("i-0abcd1234ef567890", True),  # 17
        ("i-0abcd1234ef56789", False),  # 16
        ("i-0ABCD123", False),
        ("i-0abcd1234ef567890\n", False),
        ("TestInstance", False),
        ("i-", False),
    ],
)
def test_only_an_ec2_shaped_dimension_is_taken_as_the_instance(value: str, taken: bool) -> None:
    from chalicelib.alerts.notifications import parse_notification

    message = sample("ALARM")
    message["AlarmName"] = "someone-elses-alarm"
    message["Trigger"]["Dimensions"] = [{"value": value, "name": "InstanceId"}]
    change = parse_notification(json.dumps(message))
    assert change.instance_id == (value if taken else None)
