"""The fleet tick on moto: snapshot, metrics, the fleet alarm and the unhealthy alert."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.fleet.health import FleetHealth
from chalicelib.fleet.snapshots import SNAPSHOT
from chalicelib.fleet.stats import Stats
from local.provision import Provisioned
from tests.integration.conftest import T0, Fleet


@pytest.fixture
def health(fleet: Fleet, infra: Provisioned) -> FleetHealth:
    alerts = AlertPublisher(
        fleet.clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]
    )
    return FleetHealth(
        fleet.registry,
        Stats(fleet.clients.dynamodb, fleet.settings.stats_table),
        alerts,
        threshold=5.0,
        clock=lambda: T0 + timedelta(minutes=5),
    )


def _critical_queue(fleet: Fleet, infra: Provisioned) -> str:
    sqs = fleet.session.client("sqs")
    url = sqs.create_queue(QueueName="critical")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    fleet.session.client("sns").subscribe(
        TopicArn=infra.arns["CriticalTopic"], Protocol="sqs", Endpoint=arn
    )
    return url


def _unhealthy(fleet: Fleet, instance_id: str) -> None:
    ms = int((T0 + timedelta(seconds=90)).timestamp() * 1000)
    fleet.registry.update(instance_id, {"check_status_state": "ALARM", "check_status_ms": ms})


def test_tick_publishes_figures_stores_the_snapshot_and_alerts_once(
    fleet: Fleet, infra: Provisioned, health: FleetHealth, capsys: Any
) -> None:
    instances = fleet.launch(10)
    fleet.lifecycle.handle([fleet.event(i, "running", T0) for i in instances])
    queue = _critical_queue(fleet, infra)
    _unhealthy(fleet, instances[0])

    document = health.tick()
    health.tick()

    assert document["unhealthy"]["percent"] == 10.0
    stored = health.stats.get_document(SNAPSHOT)
    assert stored is not None
    assert stored["instances"]["running"] == 10
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [d["UnhealthyPercent"] for d in emf] == [[10.0], [10.0]]
    assert [d["ActiveArrays"] for d in emf] == [[1.0], [1.0]]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]] for d in emf)
    messages = fleet.session.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)[
        "Messages"
    ]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [b["MessageAttributes"]["event_type"]["Value"] for b in bodies] == ["fleet_unhealthy"]
    assert bodies[0]["Subject"].startswith("Fleet unhealthy: 1 of 10")


def test_the_fleet_cost_rate_is_published_from_the_snapshots_cost(
    fleet: Fleet, health: FleetHealth, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost engine (issue #22's core) adds `cost` to the snapshot; until then, and
    for a rate that is not a number, nothing is published."""
    from chalicelib.fleet import health as health_module

    real = health_module.snapshot
    rates: list[Any] = [2.5, None, "bad"]

    def with_cost(*args: Any) -> dict[str, Any]:
        document = real(*args)
        rate = rates.pop(0)
        if rate is not None:
            document["cost"] = {"usd_per_hour": rate, "usd_today": 1.0, "usd_month_to_date": 9.0}
        return document

    monkeypatch.setattr(health_module, "snapshot", with_cost)
    for _ in range(3):
        health.tick()
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    cost = [d for d in emf if d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Spawn/Cost"]
    assert [d["FleetCostRateUSDPerHour"] for d in cost] == [[2.5]]
    assert cost[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert len(emf) == 4  # Spawn/Fleet on every tick, besides
