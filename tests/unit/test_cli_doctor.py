"""`spawn-monitor doctor`'s decisions: alarm drift, cost, and the names it expects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from spawn_monitor.doctor import DEFAULT_RESOURCES, alarm_drift, alarm_kind
from spawn_monitor.pricing import PRICES, Usage, estimate
from tests.conftest import ROOT

NOW = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=1)


def test_agreeing_alarms_and_instances_show_no_drift() -> None:
    alarms = ["spawn-instance-i-1-status", "spawn-instance-i-1-system"]
    assert alarm_drift({"i-1": OLD}, alarms, fleet_query=False, now=NOW).missing == []


def test_missing_and_orphaned_alarms_are_named() -> None:
    drift = alarm_drift(
        {"i-1": OLD, "i-2": OLD},
        ["spawn-instance-i-1-status", "spawn-instance-i-9-status", "spawn-instance-i-9-system"],
        fleet_query=False,
        now=NOW,
    )
    assert drift.missing == [
        "spawn-instance-i-1-system",
        "spawn-instance-i-2-status",
        "spawn-instance-i-2-system",
    ]
    assert drift.orphaned == ["spawn-instance-i-9-status", "spawn-instance-i-9-system"]


def test_an_instance_launched_moments_ago_may_still_wait_for_its_alarms() -> None:
    drift = alarm_drift({"i-new": NOW - timedelta(seconds=30)}, [], fleet_query=False, now=NOW)
    assert (drift.missing, len(drift.waiting)) == ([], 2)


def test_in_fleet_query_mode_every_instance_alarm_is_an_orphan() -> None:
    drift = alarm_drift({"i-1": OLD}, ["spawn-instance-i-1-status"], fleet_query=True, now=NOW)
    assert (drift.missing, drift.orphaned) == ([], ["spawn-instance-i-1-status"])


def test_cost_is_counts_times_list_prices() -> None:
    usage = Usage(
        standard_alarms=2001,  # 1,000 instances x 2 + the fleet alarm
        high_resolution_alarms=1,
        anomaly_alarms=2,
        composite_alarms=1,
        metric_series=100,
        dashboards=4,
        log_gb_per_month=10,
    )
    cost = estimate(usage)
    assert cost["alarms"] == round(2001 * 0.10 + 0.30 + 2 * 0.30 + 0.50, 2) == 201.5
    assert cost["custom_metrics"] == 30.0
    assert cost["dashboards"] == 12.0
    assert cost["log_ingestion"] == 5.0
    assert cost["total"] == 248.5
    assert PRICES.source.startswith("https://aws.amazon.com/cloudwatch/pricing")


def test_alarm_kinds_follow_how_cloudwatch_bills_them() -> None:
    assert alarm_kind({"Period": 60}) == "standard"
    assert alarm_kind({"Period": 10}) == "high_resolution"
    assert alarm_kind({"ThresholdMetricId": "band", "Metrics": []}) == "anomaly"
    query = {"Metrics": [{"Id": "checks", "Expression": 'SELECT MAX(x) FROM "AWS/EC2"'}]}
    assert alarm_kind(query) == "query"


def test_query_alarms_are_billed_per_metric_they_analyze() -> None:
    # ALARM_MODE=fleet-query over 1,000 instances: 2 alarms analyzing 1,000 series each.
    cost = estimate(Usage(standard_alarms=1, query_alarm_metrics=2000))
    assert cost["alarms"] == round(0.10 + 2000 * PRICES.query_alarm_metric, 2)


def test_default_names_are_those_the_infrastructure_definition_declares() -> None:
    # The CLI must install without this repository, so it carries the default names;
    # this holds them to infra/resources.json, the one definition of the deployment.
    template = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    name_keys = {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Events::Rule": "Name",
    }
    declared = {
        kind: sorted(r["Properties"][key] for r in template.values() if r.get("Type") == kind)
        for kind, key in name_keys.items()
    }
    assert {kind: sorted(names) for kind, names in DEFAULT_RESOURCES.items()} == declared


def test_the_cost_estimate_reads_the_one_price_list() -> None:
    # The same data file the backend's cost benchmark reads (tests/unit/test_cost.py).
    import json
    from pathlib import Path

    from spawn_monitor.pricing import PRICE_LIST, PRICES

    shipped = json.loads((Path(__file__).parents[2] / "cli/spawn_monitor/prices.json").read_text())
    assert shipped == PRICE_LIST
    assert PRICES.standard_alarm == shipped["cloudwatch"]["standard_alarm"]
    assert PRICES.custom_metric == shipped["cloudwatch"]["custom_metric"]
    assert PRICES.as_of == shipped["as_of"]
    assert "aws.amazon.com" in shipped["source"]
