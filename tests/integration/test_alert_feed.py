"""One feed of every alert (SPEC §7 `/alerts`, §8): alarm changes and the alerts the
system sends, stored where they are sent, read newest first, filtered, on moto."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from chalice.app import Chalice

from chalicelib import container as wiring
from chalicelib.alerts.feed import FILTER_BUDGET, AlertFilter
from chalicelib.alerts.publish import Alert, publish_request
from chalicelib.api.fleet import api as fleet_api
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from testkit.faults import count_calls
from tests import apigw
from tests.conftest import load_event
from tests.integration.conftest import T0, Fleet, container

ARRAY = "render-20260127-a1b2c3"
OTHER = "render-20260127-d4e5f6"


@pytest.fixture
def app(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Chalice:
    monkeypatch.setattr(wiring, "_installed", fleet.wiring)
    chalice = Chalice(app_name="test-alert-feed")
    chalice.register_blueprint(fleet_api)
    return chalice


@pytest.fixture
def fleet(session: Any, infra: Any) -> Fleet:
    return Fleet(session, infra, Settings(api_isolation="off"))


def get(app: Chalice, path: str) -> tuple[int, Any]:
    return apigw.get(app, path, None)


def spot_warning(instance_id: str, time: str = "2026-01-27T11:30:12Z") -> dict[str, Any]:
    event = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
    event["time"] = time
    event["detail"] = {"instance-id": instance_id, "instance-action": "terminate"}
    return event


def alarm(fleet: Fleet, instance_id: str, at: str, topic: str | None = None) -> None:
    message = json.loads(
        load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]["Message"]
    )
    message["AlarmName"] = f"spawn-instance-{instance_id}-status"
    message["StateChangeTime"] = at
    message["Trigger"]["Dimensions"] = [{"value": instance_id, "name": "InstanceId"}]
    fleet.wiring.notifications.handle(json.dumps(message), topic or fleet.topic_arn)


def managed(fleet: Fleet, array_id: str = ARRAY) -> str:
    [instance] = fleet.launch(tags={"spawn:managed": "true", "spawn:job-array-id": array_id})
    fleet.lifecycle.handle([fleet.event(instance, "running", T0)])
    return instance


def test_a_spot_interruption_sent_is_a_system_entry_beside_the_alarm_changes(
    fleet: Fleet, app: Chalice
) -> None:
    instance = managed(fleet)
    alarm(fleet, instance, "2026-01-27T11:29:00.000+0000")
    assert fleet.wiring.interruptions.on_warning(spot_warning(instance)) == "counted"
    alarm(fleet, instance, "2026-01-27T11:31:00.000+0000", fleet.wiring.critical_topic_arn)
    status, body = get(app, "/alerts")
    assert status == 200
    entries = body["alerts"]
    assert [(e["kind"], e["at"], e["severity"]) for e in entries] == [
        ("alarm", "2026-01-27T11:31:00Z", "critical"),
        ("system", "2026-01-27T11:30:12Z", "warning"),
        ("alarm", "2026-01-27T11:29:00Z", "warning"),
    ]
    system = entries[1]
    assert system["event_type"] == "spot_interruption"
    assert (system["array_id"], system["instance_id"]) == (ARRAY, instance)
    assert system["subject"].startswith(f"Spot interruption: {instance}")
    assert system["topic"] == "spawn-alerts"
    assert system["details"]["instance_action"] == "terminate"
    assert entries[0]["alarm_name"] == f"spawn-instance-{instance}-status"
    # The consumer still drops the copy it reads back from the topic: no second entry.
    sent = publish_request(
        Alert("spot_interruption", "warning", system["subject"], {}, ARRAY), fleet.topic_arn
    )
    assert fleet.wiring.notifications.handle(sent["Message"], fleet.topic_arn) == "own-alert"
    assert len(get(app, "/alerts")[1]["alerts"]) == 3


def test_a_retried_send_is_one_entry_and_a_new_one_is_another(fleet: Fleet) -> None:
    alert = Alert("array_failing", "critical", "Array failing", {"failed": 3}, ARRAY, T0)
    for _ in range(3):  # the caller's retries of the same alert
        fleet.wiring.alerts.publish(alert)
    later = replace(alert, time=T0 + timedelta(minutes=1))
    fleet.wiring.alerts.publish(later)
    fleet.wiring.alerts.publish(replace(later, dedupe_key="episode-2"))
    entries = fleet.wiring.alert_feed.latest(10)
    assert [(e["at"], e["severity"], e["topic"]) for e in entries] == [
        ("2026-01-27T10:01:00Z", "critical", "spawn-critical"),
        ("2026-01-27T10:01:00Z", "critical", "spawn-critical"),
        ("2026-01-27T10:00:00Z", "critical", "spawn-critical"),
    ]


def test_details_json_cannot_hold_leave_the_entry_without_them(fleet: Fleet) -> None:
    facts = {"rate": float("inf"), "done": 0.5}
    fleet.wiring.alerts.publish(Alert("workers_stalled", "warning", "stalled", facts, ARRAY, T0))
    fleet.wiring.alerts.publish(
        Alert("workers_stalled", "warning", "s", {"done": 0.5, "n": 3}, OTHER, T0)
    )
    first, second = fleet.wiring.alert_feed.latest(5)
    assert (first["array_id"], first["details"]) == (OTHER, {"done": 0.5, "n": 3})
    assert second["array_id"] == ARRAY
    assert "details" not in second


def test_a_feed_write_failure_is_logged_and_the_send_stands(
    session: Any, infra: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broken = container(Clients(session), Settings(alert_history_table="no-such-table"))
    alert = Alert("fleet_unhealthy", "critical", "Fleet unhealthy", {}, None, T0)
    with caplog.at_level(logging.ERROR):
        message_id = broken.alerts.publish(alert)
    assert message_id
    assert "alert sent but not kept in the alert feed" in caplog.text


def test_filters_narrow_the_feed_and_bad_values_are_400(fleet: Fleet, app: Chalice) -> None:
    instance = managed(fleet)
    other = managed(fleet, OTHER)
    alarm(fleet, instance, "2026-01-27T11:00:00.000+0000")
    fleet.wiring.interruptions.on_warning(spot_warning(instance, "2026-01-27T11:01:00Z"))
    fleet.wiring.interruptions.on_warning(spot_warning(other, "2026-01-27T11:02:00Z"))
    fleet.wiring.alerts.publish(
        Alert(
            "array_finished",
            "info",
            "Array finished",
            {},
            OTHER,
            T0 + timedelta(hours=1, minutes=3),
        )
    )

    def seen(query: str) -> list[tuple[str, str | None, str | None]]:
        status, body = get(app, f"/alerts?{query}")
        assert status == 200, body
        return [(e["kind"], e.get("event_type"), e.get("array_id")) for e in body["alerts"]]

    assert seen("kind=system&event_type=spot_interruption") == [
        ("system", "spot_interruption", OTHER),
        ("system", "spot_interruption", ARRAY),
    ]
    assert seen("kind=alarm") == [("alarm", None, ARRAY)]
    assert seen(f"array_id={OTHER}") == [
        ("system", "array_finished", OTHER),
        ("system", "spot_interruption", OTHER),
    ]
    assert seen("severity=info") == [("system", "array_finished", OTHER)]
    assert seen(f"array_id={ARRAY}&kind=system&limit=1") == [("system", "spot_interruption", ARRAY)]
    assert len(seen("")) == 4
    for bad in ("kind=alarms", "event_type=nope", "severity=high", "array_id=-x", "limit=0"):
        status, body = get(app, f"/alerts?{bad}")
        assert status == 400, bad
        assert body["Code"] == "BadRequestError"


def test_reads_are_bounded_queries_filtered_or_not(fleet: Fleet) -> None:
    feed = fleet.wiring.alert_feed
    for minute in range(FILTER_BUDGET + 50):
        at = T0 + timedelta(minutes=minute)
        fleet.wiring.alerts.publish(Alert("workers_stalled", "warning", "s", {}, ARRAY, at))
    fleet.wiring.alerts.publish(Alert("array_finished", "info", "f", {}, OTHER, T0))
    calls = count_calls(fleet.clients.dynamodb)
    assert len(feed.latest(7)) == 7
    assert calls == {"Query": 1}
    calls.clear()
    # The one match is older than the budget: it is not reached, in at most 5 Queries.
    assert feed.latest(5, only=AlertFilter(array_id=OTHER)) == []
    assert calls == {"Query": FILTER_BUDGET // 100}


def test_budget_alerts_are_one_feed_entry_per_level_and_filter_by_type(
    fleet: Fleet, app: Chalice
) -> None:
    """`array_budget` (SPEC §14): warning and critical sent in one tick share type, array
    and time; their dedupe keys keep them two entries, warning below critical."""
    from chalicelib.progress.budget import budget_alerts_due
    from chalicelib.progress.summary import Summary

    view = {"array_id": ARRAY, "name": "render", "cost": {"usd": 12.0, "budget_usd": 10.0}}
    due, _ = budget_alerts_due(Summary.new(ARRAY), view, T0)
    for alert in due:
        fleet.wiring.alerts.publish(alert)
    fleet.wiring.alerts.publish(due[0])  # a retried send: the same entry
    status, body = get(app, "/alerts?event_type=array_budget")
    assert status == 200, body
    assert [(e["severity"], e["array_id"]) for e in body["alerts"]] == [
        ("critical", ARRAY),
        ("warning", ARRAY),
    ]
