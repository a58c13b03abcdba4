"""Health from contributors (ALARM_MODE=fleet-query): EventBridge contributor events and
contributor-level SNS notifications move instance health, `/fleet` and `/alerts` as the
per-instance alarms' notifications do."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.alerts.feed import AlertHistory
from chalicelib.alerts.notifications import Notifications
from chalicelib.fleet.health import snapshot
from tests.conftest import load_event
from tests.integration.conftest import T0, Fleet

TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts"


def contributor_event(instance_id: str, state: str, seconds: int, check: str = "status") -> Any:
    event = copy.deepcopy(load_event("cloudwatch-alarm-contributor-state-change.json"))
    event["detail"]["alarmName"] = f"spawn-fleet-{check}-check"
    event["detail"]["alarmContributor"]["attributes"]["InstanceId"] = instance_id
    event["detail"]["state"]["value"] = state
    event["detail"]["state"]["timestamp"] = (T0 + timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000"
    )
    return event


def sns_copy(event: dict[str, Any]) -> str:
    """The same change as a contributor-level SNS notification on the alerts topic."""
    message = json.loads(
        load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]["Message"]
    )
    detail = event["detail"]
    message["AlarmName"] = detail["alarmName"]
    message["NewStateValue"] = detail["state"]["value"]
    message["StateChangeTime"] = detail["state"]["timestamp"]
    message["AlarmContributorAttributes"] = detail["alarmContributor"]["attributes"]
    message.pop("Trigger")
    return json.dumps(message)


@pytest.fixture
def consumer(fleet: Fleet) -> Notifications:
    history = AlertHistory(
        fleet.clients.dynamodb, fleet.settings.alert_history_table, timedelta(days=30)
    )
    return Notifications(fleet.registry, history)


@pytest.fixture
def instances(fleet: Fleet) -> list[str]:
    ids = fleet.launch(3)
    fleet.lifecycle.handle([fleet.event(i, "running", T0) for i in ids])
    return ids


def test_the_sample_event_is_read_as_aws_sends_it(
    fleet: Fleet, consumer: Notifications, instances: list[str]
) -> None:
    event = load_event("cloudwatch-alarm-contributor-state-change.json")
    event["detail"]["alarmContributor"]["attributes"]["InstanceId"] = instances[0]
    assert consumer.handle_contributor_event(event) == "recorded"
    row = fleet.registry.get(instances[0])
    assert row is not None
    assert row["check_status_state"] == "ALARM"


def test_contributor_changes_drive_health_fleet_and_alerts_as_per_instance_alarms_do(
    fleet: Fleet, consumer: Notifications, instances: list[str]
) -> None:
    sick, other, _ = instances
    consumer.handle_contributor_event(contributor_event(sick, "ALARM", 60))
    consumer.handle_contributor_event(contributor_event(other, "ALARM", 70, check="system"))
    consumer.handle_contributor_event(contributor_event(other, "OK", 130, check="system"))

    document = snapshot(fleet.registry.all(), {"last_hour": 0, "last_24h": 0, "total": 0}, T0)
    assert document["unhealthy"]["instance_ids"] == [sick]
    assert document["unhealthy"]["count"] == 1
    latest = consumer.history.latest(10)
    assert [(e["instance_id"], e["check"], e["new_state"]) for e in latest] == [
        (other, "system", "OK"),
        (other, "system", "ALARM"),
        (sick, "status", "ALARM"),
    ]
    assert latest[-1]["alarm_name"] == "spawn-fleet-status-check"
    assert latest[-1]["array_id"] == "render-20260127-a1b2c3"
    assert latest[-1]["topic"] == "eventbridge"


def test_the_sns_and_eventbridge_copies_and_duplicates_make_one_entry(
    fleet: Fleet, consumer: Notifications, instances: list[str]
) -> None:
    event = contributor_event(instances[0], "ALARM", 60)
    consumer.handle_contributor_event(event)
    consumer.handle_contributor_event(event)  # at-least-once delivery
    assert consumer.handle(sns_copy(event), TOPIC) == "recorded"
    # Two instances changing at the same moment are two entries, not one.
    consumer.handle_contributor_event(contributor_event(instances[1], "ALARM", 60))
    latest = consumer.history.latest(10)
    assert sorted(e["instance_id"] for e in latest) == sorted(instances[:2])
    row = fleet.registry.get(instances[0])
    assert row is not None
    assert row["check_status_state"] == "ALARM"


def test_an_older_contributor_change_arriving_late_changes_nothing(
    fleet: Fleet, consumer: Notifications, instances: list[str]
) -> None:
    consumer.handle_contributor_event(contributor_event(instances[0], "OK", 120))
    consumer.handle_contributor_event(contributor_event(instances[0], "ALARM", 60))
    row = fleet.registry.get(instances[0])
    assert row is not None
    assert row["check_status_state"] == "OK"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["detail"].update(alarmName="someone-elses-alarm"),
        lambda e: e["detail"].pop("alarmContributor"),
        lambda e: e["detail"]["alarmContributor"].update(attributes={"TableName": "t"}),
        lambda e: e["detail"]["alarmContributor"].update(attributes={"InstanceId": "TestInstance"}),
        lambda e: e["detail"]["state"].update(value="INSUFFICIENT_DATA"),
        lambda e: e["detail"]["state"].update(timestamp="yesterday"),
        lambda e: e.update(detail="not an object"),
        lambda e: e.update({"detail-type": "CloudWatch Alarm State Change"}),
    ],
)
def test_anything_else_is_skipped_and_changes_nothing(
    fleet: Fleet, consumer: Notifications, instances: list[str], mutate: Any
) -> None:
    event = contributor_event(instances[0], "ALARM", 60)
    mutate(event)
    assert consumer.handle_contributor_event(event) == "skipped"
    row = fleet.registry.get(instances[0])
    assert row is not None
    assert "check_status_state" not in row
    assert consumer.history.latest(10) == []


def test_a_contributor_change_of_an_opted_out_instance_is_not_an_alert(
    fleet: Fleet, consumer: Notifications, instances: list[str]
) -> None:
    # The query keeps to `WHERE tag."spawn:managed" = 'true'` (documented syntax only), so
    # CloudWatch evaluates an opted-out instance carrying that tag as a contributor.
    [opted_out] = fleet.launch(
        1, {"spawn:managed": "true", "spawn:monitoring": "off", "spawn:job-array-id": "a-1"}
    )
    fleet.lifecycle.handle([fleet.event(opted_out, "running", T0)])
    row = fleet.registry.get(opted_out)
    assert row is not None
    assert row["managed"] is False
    assert consumer.handle_contributor_event(contributor_event(opted_out, "ALARM", 60)) == (
        "unmanaged"
    )
    assert consumer.handle(sns_copy(contributor_event(opted_out, "ALARM", 60)), TOPIC) == (
        "unmanaged"
    )
    assert consumer.history.latest(10) == []
    # A managed instance's change is still one.
    assert consumer.handle_contributor_event(contributor_event(instances[0], "ALARM", 60)) == (
        "recorded"
    )
    assert [e["instance_id"] for e in consumer.history.latest(10)] == [instances[0]]
