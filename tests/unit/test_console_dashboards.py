"""Dashboards as data: valid bodies inside CloudWatch's limits, every metric published,
the deployment's region except for billing, and names CloudWatch accepts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.console import dashboards
from chalicelib.console.alarms import Topics
from chalicelib.console.arrays import ArrayState
from chalicelib.console.dashboards import (
    DashboardTooLarge,
    array_dashboard_name,
    checked,
    references,
)
from chalicelib.console.description import Deployment, describe
from chalicelib.contract import catalog
from chalicelib.core.settings import Settings

NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
TOPICS = Topics("arn:aws:sns:eu-west-1:1:a", "arn:aws:sns:eu-west-1:1:c", None)
ARRAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # the API's array id rule
ARRAYS = [
    ArrayState("render-20260127-a1b2c3"),
    ArrayState("v2.train:run_7"),
    ArrayState("x" * 128),
    ArrayState("done-20260101-000000", NOW - timedelta(hours=1)),
]


def bodies(region: str = "eu-west-1") -> dict[str, dict[str, Any]]:
    console = describe(Settings(), Deployment(region, "123456789012", TOPICS), ARRAYS, NOW)
    return {name: json.loads(body) for name, body in console.dashboards.items()}


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_every_body_is_valid_json_within_the_limits(region: str) -> None:
    console = describe(Settings(), Deployment(region, "123456789012", TOPICS), ARRAYS, NOW)
    assert len(console.dashboards) == 1 + len(ARRAYS)  # one each, finished one kept (24 h)
    for name, body in console.dashboards.items():
        parsed = json.loads(body)
        assert len(body.encode()) <= dashboards.MAX_BODY_BYTES
        assert checked(parsed) is parsed
        assert dashboards.valid_name(name), name
        assert {w["type"] for w in parsed["widgets"]} <= {"metric", "text", "alarm", "log"}
        for widget in parsed["widgets"]:
            assert widget["x"] + widget["width"] <= 24


def test_every_referenced_metric_is_in_the_published_list() -> None:
    found = [ref for body in bodies().values() for ref in references(body)]
    assert len(found) > 40
    for ref in found:
        if ref.name == "*":  # a SEARCH over a schema
            assert catalog.has_schema(ref.namespace, ref.dimensions or ()), ref
        else:
            assert catalog.is_published(ref.namespace, ref.name, ref.dimensions), ref


def test_widgets_use_the_deployment_region_except_billing() -> None:
    for body in bodies("ap-southeast-2").values():
        for widget in body["widgets"]:
            properties = widget["properties"]
            if widget["type"] not in ("metric", "log"):
                continue
            billing = any(r.namespace == "AWS/Billing" for r in references({"widgets": [widget]}))
            assert properties["region"] == ("us-east-1" if billing else "ap-southeast-2")


def test_the_fleet_dashboard_has_the_guides_widgets_on_real_metrics() -> None:
    fleet = bodies()["spawn-fleet"]
    titles = " | ".join(w["properties"].get("title", "") for w in fleet["widgets"]).lower()
    for wanted in (
        "active instances",
        "cpu",
        "network",
        "tasks completed",
        "task rate",
        "error rate",
        "gpu utilization",
        "gpu memory",
        "gpu temperature",
        "status check",
        "spot interruptions and rebalance",
        "unhealthy",
        "estimated charges",
        "fleet cost rate",
        "p50",
        "p90",
        "p99",
        "alarms",
    ):
        assert wanted in titles, wanted
    named = {(r.namespace, r.name) for r in references(fleet)}
    assert ("Spawn/Fleet", "ActiveInstances") in named  # not a SampleCount of CPU
    assert ("AWS/EC2", "StatusCheckFailed") not in named  # the guide's; EC2 has _Instance
    insights = [
        line[0]["expression"]
        for w in fleet["widgets"]
        for line in w["properties"].get("metrics", [])
        if isinstance(line[0], dict) and line[0]["expression"].startswith("SELECT")
    ]
    assert any('FROM SCHEMA("AWS/EC2", InstanceId)' in q for q in insights)
    [alarms] = [w for w in fleet["widgets"] if w["type"] == "alarm"]
    assert (
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:spawn-fleet-error-rate"
        in (alarms["properties"]["alarms"])
    )


def test_an_array_dashboard_shows_only_that_array() -> None:
    body = bodies()[array_dashboard_name("v2.train:run_7")]
    text = json.dumps(body)
    assert "v2.train:run_7" in text
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert titles[1:] == [
        "Progress (% of workers finished)",
        "Workers by status",
        "Tasks completed",
        "Failed workers (% of finished workers)",
        "Spot interruptions",
        "Cost so far (USD, live estimate)",
    ]
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], str):
                assert line[2:4] == ["ArrayId", "v2.train:run_7"]


def test_a_finished_arrays_dashboard_goes_after_the_retention() -> None:
    settings = Settings(array_dashboard_retention_hours=2)
    deployment = Deployment("eu-west-1", "1", TOPICS)
    finished = [ArrayState("a-1", NOW - timedelta(hours=1)), ArrayState("b-1", None)]
    later = describe(settings, deployment, finished, NOW + timedelta(hours=1))
    assert set(later.dashboards) == {"spawn-fleet", "spawn-array-b-1"}
    sooner = describe(settings, deployment, finished, NOW + timedelta(minutes=59))
    assert "spawn-array-a-1" in sooner.dashboards


def test_names_escape_what_cloudwatch_refuses() -> None:
    assert array_dashboard_name("render-20260127-a1b2c3") == "spawn-array-render-20260127-a1b2c3"
    assert array_dashboard_name("render.v2:0") == "spawn-array-render_dv2_c0"
    assert array_dashboard_name("a_db") == "spawn-array-a__db"
    assert array_dashboard_name("a.b") != array_dashboard_name("a_db")


@given(st.from_regex(ARRAY_ID, fullmatch=True), st.from_regex(ARRAY_ID, fullmatch=True))
def test_names_are_valid_and_one_to_one(first: str, second: str) -> None:
    name = array_dashboard_name(first)
    assert dashboards.valid_name(name)
    assert len(name) <= 255
    assert name.startswith("spawn-array-")
    if first != second:
        assert name != array_dashboard_name(second)


def test_a_long_id_is_cut_with_a_hash_of_the_whole_id() -> None:
    one, two = "a" + ":" * 126 + "b", "a" + ":" * 126 + "c"  # 128 characters, 254 escaped
    assert len(array_dashboard_name(one)) == 255
    assert array_dashboard_name(one) != array_dashboard_name(two)


def test_limits_are_enforced() -> None:
    widget = {"type": "metric", "properties": {"metrics": [["Spawn/Fleet", "ActiveInstances"]]}}
    with pytest.raises(DashboardTooLarge, match="widgets"):
        checked({"widgets": [widget] * 501})
    with pytest.raises(DashboardTooLarge, match="one widget"):
        checked({"widgets": [{"properties": {"metrics": [["a", "b"]] * 501}}]})
    with pytest.raises(DashboardTooLarge, match="metrics"):
        checked({"widgets": [{"properties": {"metrics": [["a", "b"]] * 500}}] * 6})
    with pytest.raises(DashboardTooLarge, match="expression"):
        checked({"widgets": [{"properties": {"metrics": [[{"expression": "x" * 2049}]]}}]})
    with pytest.raises(DashboardTooLarge, match="bytes"):
        checked({"widgets": [{"properties": {"markdown": "x" * 100_001}}]})


def test_a_widget_cannot_name_an_unpublished_metric() -> None:
    with pytest.raises(catalog.UnpublishedMetric):
        dashboards._series("Spawn/Fleet", "ActiveInstance")
    with pytest.raises(catalog.UnpublishedMetric):
        dashboards._insights("q", "AVG", "AWS/EC2", "CPUUtilization", ("AutoScalingGroupName",), "")


def test_cost_widgets_read_the_spawn_cost_metrics() -> None:
    named = {
        name: {(r.namespace, r.name, tuple(sorted(r.dimensions or ()))) for r in references(body)}
        for name, body in bodies().items()
    }
    assert ("Spawn/Cost", "FleetCostRateUSDPerHour", ()) in named["spawn-fleet"]
    array = named[array_dashboard_name("v2.train:run_7")]
    assert ("Spawn/Cost", "ArrayCostUSD", ("ArrayId",)) in array
