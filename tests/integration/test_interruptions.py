"""Spot interruption warnings and rebalance recommendations, on moto (SPEC §3, §6, §8)."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.fleet.events import MalformedEvent
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.fleet.stats import Stats
from local.provision import Provisioned
from tests.conftest import load_event
from tests.integration.conftest import Fleet


class Harness:
    def __init__(self, fleet: Fleet, infra: Provisioned, **settings: Any) -> None:
        self.fleet = fleet
        self.sqs = fleet.session.client("sqs")
        self.queue = self.sqs.create_queue(QueueName="alert-subscriber")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        fleet.session.client("sns").subscribe(
            TopicArn=infra.arns["AlertsTopic"],
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
            Attributes={"FilterPolicy": json.dumps({"event_type": ["spot_interruption"]})},
        )
        self.publisher = AlertPublisher(
            fleet.clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]
        )
        self.settings = replace(fleet.settings, **settings)
        self.stats = Stats(fleet.clients.dynamodb, self.settings.stats_table)
        self.handler = Interruptions(
            self.settings, fleet.clients.dynamodb, fleet.ec2, fleet.registry, self.publisher
        )

    def warning(
        self, instance_id: str, event_id: str = "w-1", action: str = "terminate"
    ) -> dict[str, Any]:
        event = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
        event["id"] = event_id
        event["detail"] = {"instance-id": instance_id, "instance-action": action}
        return event

    def alerts(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]

    def totals(self) -> dict[str, int]:
        at = datetime.fromisoformat(
            load_event("ec2-spot-interruption-warning.json")["time"].replace("Z", "+00:00")
        )
        return self.stats.interruption_totals(at.astimezone(UTC))


@pytest.fixture
def harness(fleet: Fleet, infra: Provisioned) -> Harness:
    return Harness(fleet, infra)


def _emf(capsys: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def test_the_same_warning_delivered_three_times_counts_once(harness: Harness, capsys: Any) -> None:
    [instance] = harness.fleet.launch()
    event = harness.warning(instance)
    outcomes = [harness.handler.on_warning(event) for _ in range(3)]

    assert outcomes == ["counted", "duplicate", "duplicate"]
    assert harness.totals() == {"last_hour": 1, "last_24h": 1, "total": 1}
    documents = _emf(capsys)
    fleet_wide = [d for d in documents if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]]
    by_array = [d for d in documents if "ArrayId" in d]
    assert len(fleet_wide) == 1
    assert len(by_array) == 1
    assert by_array[0]["ArrayId"] == "render-20260127-a1b2c3"
    assert all("service" not in d for d in documents)
    [alert] = harness.alerts()
    assert alert["Subject"].startswith(f"Spot interruption: {instance}")
    assert alert["MessageAttributes"]["event_type"]["Value"] == "spot_interruption"
    assert alert["MessageAttributes"]["array_id"]["Value"] == "render-20260127-a1b2c3"
    assert json.loads(alert["Message"])["details"]["instance_action"] == "terminate"
    assert harness.alerts() == []

    row = harness.fleet.registry.get(instance)
    assert row is not None
    assert row["interruption_action"] == "terminate"
    assert row["interrupted_at"].endswith("Z")


def test_two_instances_count_two(harness: Harness) -> None:
    first, second = harness.fleet.launch(2)
    harness.handler.on_warning(harness.warning(first, "w-1"))
    harness.handler.on_warning(harness.warning(second, "w-2", action="stop"))
    harness.handler.on_warning(harness.warning(first, "w-3"))  # a re-sent warning, new id
    assert harness.totals()["total"] == 2
    assert harness.stats.array_interruptions("render-20260127-a1b2c3") == 2


def test_unmanaged_instance_is_not_counted_by_default(harness: Harness) -> None:
    [instance] = harness.fleet.launch(tags={"Name": "other"})
    assert harness.handler.on_warning(harness.warning(instance)) == "ignored"
    assert harness.totals()["total"] == 0
    assert harness.alerts() == []


def test_unmanaged_counts_in_the_fleet_figure_only_when_configured(
    harness: Harness, fleet: Fleet, infra: Provisioned, capsys: Any
) -> None:
    counting = Harness(fleet, infra, count_unmanaged_interruptions=True)
    [instance] = fleet.launch(tags={"Name": "other", "spawn:job-array-id": "not-ours-1"})
    assert counting.handler.on_warning(counting.warning(instance)) == "counted"
    assert counting.totals()["total"] == 1
    assert counting.stats.array_interruptions("not-ours-1") == 0
    documents = _emf(capsys)
    assert [d.get("ArrayId") for d in documents] == [None]
    assert counting.alerts() == []  # not ours to alert about


def test_malformed_warning_is_rejected_and_counts_nothing(harness: Harness) -> None:
    event = harness.warning("i-0abcdef1234567890")
    event["detail"]["instance-action"] = "explode"
    with pytest.raises(MalformedEvent, match="instance-action"):
        harness.handler.on_warning(event)
    assert harness.totals()["total"] == 0


def test_a_failed_alert_is_sent_on_retry_without_counting_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    [instance] = harness.fleet.launch()
    event = harness.warning(instance)
    real = harness.publisher.publish

    def broken(alert: Any) -> str:
        raise RuntimeError("SNS unavailable")

    monkeypatch.setattr(harness.publisher, "publish", broken)
    with pytest.raises(RuntimeError):
        harness.handler.on_warning(event)
    monkeypatch.setattr(harness.publisher, "publish", real)
    assert harness.handler.on_warning(event) == "duplicate"  # Lambda's retry
    assert harness.totals()["total"] == 1
    assert len(harness.alerts()) == 1


def test_interruption_of_an_instance_seen_before_its_running_event(harness: Harness) -> None:
    [instance] = harness.fleet.launch()
    assert harness.handler.on_warning(harness.warning(instance)) == "counted"
    harness.fleet.lifecycle.handle([harness.fleet.event(instance, "running")])
    row = harness.fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "running"  # the interruption's write did not block the lifecycle
    assert row["interruption_action"] == "terminate"
    assert harness.totals() == {"last_hour": 1, "last_24h": 1, "total": 1}
    [alert] = harness.alerts()
    assert alert["Subject"].startswith(f"Spot interruption: {instance}")
    assert alert["MessageAttributes"]["array_id"]["Value"] == "render-20260127-a1b2c3"


def test_rebalance_recommendation_counts_once_and_publishes(harness: Harness, capsys: Any) -> None:
    [instance] = harness.fleet.launch()
    event = copy.deepcopy(load_event("ec2-rebalance-recommendation.json"))
    event["detail"] = {"instance-id": instance}
    assert [harness.handler.on_rebalance(event) for _ in range(2)] == ["counted", "duplicate"]
    [document] = _emf(capsys)
    assert document["RebalanceRecommendations"] == 1.0 or document["RebalanceRecommendations"] == [
        1.0
    ]
    assert harness.stats.rebalance_total() == 1
    row = harness.fleet.registry.get(instance)
    assert row is not None
    assert "rebalance_at" in row


def test_logs_never_carry_the_whole_event(harness: Harness, caplog: Any) -> None:
    [instance] = harness.fleet.launch()
    with caplog.at_level(logging.INFO):
        harness.handler.on_warning(harness.warning(instance))
    assert "123456789012" not in caplog.text  # the event's account and ARNs stay out


def test_a_spot_instance_that_runs_again_can_be_interrupted_again(harness: Harness) -> None:
    fleet = harness.fleet
    [instance] = fleet.launch()
    start = datetime(2026, 1, 27, 11, 0, tzinfo=UTC)
    fleet.lifecycle.handle([fleet.event(instance, "running", start)])

    def warning_at(minutes: int, event_id: str) -> dict[str, Any]:
        event = harness.warning(instance, event_id, action="stop")
        event["time"] = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return event

    first = warning_at(10, "w-1")
    assert harness.handler.on_warning(first) == "counted"
    fleet.lifecycle.handle([fleet.event(instance, "stopped", start + timedelta(minutes=13))])
    fleet.lifecycle.handle([fleet.event(instance, "running", start + timedelta(minutes=30))])
    assert harness.handler.on_warning(first) == "duplicate"  # a late copy of the first
    assert harness.handler.on_warning(warning_at(40, "w-2")) == "counted"
    assert harness.totals()["total"] == 2
    assert len(harness.alerts()) == 2


def test_conflicting_transactions_in_a_burst_are_retried(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    [instance] = harness.fleet.launch()
    real = harness.handler.dynamodb.transact_write_items
    conflicts = iter([True, True, False])

    def busy(**kwargs: Any) -> Any:
        if next(conflicts):
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(harness.handler.dynamodb, "transact_write_items", busy)
    harness.handler.sleep = lambda seconds: None
    assert harness.handler.on_warning(harness.warning(instance)) == "counted"
    assert harness.totals()["total"] == 1


def test_rebalance_of_an_unmanaged_instance_is_not_counted(harness: Harness) -> None:
    [instance] = harness.fleet.launch(tags={"Name": "other"})
    event = copy.deepcopy(load_event("ec2-rebalance-recommendation.json"))
    event["detail"] = {"instance-id": instance}
    assert harness.handler.on_rebalance(event) == "ignored"
    assert harness.stats.rebalance_total() == 0


def test_a_new_warning_before_the_restarts_running_is_recorded_counts(harness: Harness) -> None:
    # I: a stop-interrupted spot instance runs again and is warned again before its
    # restart's running event is recorded: a new interruption, not a duplicate.
    fleet = harness.fleet
    [instance] = fleet.launch()
    start = datetime(2026, 1, 27, 11, 0, tzinfo=UTC)
    fleet.lifecycle.handle([fleet.event(instance, "running", start)])

    def warning_at(minutes: int, event_id: str) -> dict[str, Any]:
        event = harness.warning(instance, event_id, action="stop")
        event["time"] = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return event

    first = warning_at(10, "w-1")
    assert harness.handler.on_warning(first) == "counted"
    fleet.lifecycle.handle([fleet.event(instance, "stopped", start + timedelta(minutes=13))])
    # EC2 starts it again at minute 30; that running event is still on its way.
    assert harness.handler.on_warning(warning_at(40, "w-2")) == "counted"
    fleet.lifecycle.handle([fleet.event(instance, "running", start + timedelta(minutes=30))])
    assert harness.handler.on_warning(first) == "duplicate"  # a late copy of the first
    assert harness.totals()["total"] == 2
    subjects = sorted(a["Subject"] for a in harness.alerts())
    assert (
        subjects
        == [f"Spot interruption: {instance} in render-20260127-a1b2c3 will stop in ~2 min"] * 2
    )


def test_a_mass_reclaim_of_100_instances_in_a_second_is_counted_exactly(
    session: Any,
) -> None:
    # E: 100 warnings a second, each transaction in flight 20 ms; DynamoDB cancels those
    # that touch an item another in-flight transaction writes (moto never does).
    from bench.interruptions import burst

    result = burst(session, warnings=100, seconds=1.0, threads=10)
    assert result.conflicts > 0  # the burst did collide
    assert (result.failed, result.counted, result.duplicates) == (0, 100, 0)
    assert result.stored_total == 100


def test_a_warning_sent_again_within_the_two_minute_notice_is_the_same_interruption(
    harness: Harness,
) -> None:
    # Found by the end-to-end test: three PutEvents of one warning straddled a second,
    # and the later-stamped copy counted as a second interruption.
    [instance] = harness.fleet.launch()
    first = harness.warning(instance, "w-1")
    again = harness.warning(instance, "w-2")
    again["time"] = "2026-01-27T11:31:52Z"  # 100 s after the first (11:30:12)
    assert harness.handler.on_warning(first) == "counted"
    assert harness.handler.on_warning(again) == "duplicate"
    assert harness.totals()["total"] == 1
    assert len(harness.alerts()) == 1


def test_a_rebalance_before_the_running_event_leaves_the_warning_its_array(
    harness: Harness,
) -> None:
    """Found by `make chaos SEED=1`: during a launch burst the lifecycle's backlog (its
    alarm calls are paced) can hold an instance's `running` event for minutes. A
    rebalance recommendation handled meanwhile created the instance's registry row with
    `managed` alone; the warning that followed trusted that row, so it was counted
    fleet-wide but in no array, and its alert named no array."""
    [instance] = harness.fleet.launch()
    recommendation = copy.deepcopy(load_event("ec2-rebalance-recommendation.json"))
    recommendation["detail"] = {"instance-id": instance}
    assert harness.handler.on_rebalance(recommendation) == "counted"

    assert harness.handler.on_warning(harness.warning(instance)) == "counted"

    assert harness.stats.array_interruptions("render-20260127-a1b2c3") == 1
    [alert] = harness.alerts()
    assert alert["MessageAttributes"]["array_id"]["Value"] == "render-20260127-a1b2c3"
