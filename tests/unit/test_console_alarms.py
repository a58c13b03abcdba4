"""Fleet alarms as data (SPEC §5): exact requests, regions, actions, the composite."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from chalicelib.console.alarms import (
    COST_ANOMALY,
    CRITICAL,
    DAILY_COST,
    MARKER,
    AlarmSpec,
    Topics,
    fleet_alarm_request,
    fleet_alarms,
    owns,
)
from chalicelib.contract import catalog
from chalicelib.core.settings import Settings

ALERTS, CRITICAL_TOPIC = "arn:alerts", "arn:critical"
BILLING_TOPIC = "arn:aws:sns:us-east-1:123456789012:billing"
NAMES = {
    "spawn-fleet-unhealthy",
    "spawn-fleet-error-rate",
    "spawn-low-throughput",
    "spawn-daily-cost-limit",
    "spawn-cpu-anomaly",
    "spawn-cost-anomaly",
    "spawn-critical-issues",
}


def alarms(
    region: str = "us-east-1", billing: str | None = None, **settings: Any
) -> list[AlarmSpec]:
    return fleet_alarms(Settings(**settings), region, Topics(ALERTS, CRITICAL_TOPIC, billing))[0]


def by_name(specs: list[AlarmSpec]) -> dict[str, AlarmSpec]:
    return {spec.name: spec for spec in specs}


def test_the_spec_names_each_once_and_every_description_is_marked() -> None:
    specs = alarms()
    assert sorted(s.name for s in specs) == sorted(NAMES)
    assert all(owns(s.request) for s in specs)
    assert all(len(s.request["AlarmDescription"]) <= 1024 for s in specs)
    assert not owns({"AlarmDescription": "someone else's alarm"})


def test_fleet_unhealthy_watches_the_percentage_with_the_critical_topic() -> None:
    request = fleet_alarm_request(7.5, "arn:critical")
    assert request["AlarmName"] == "spawn-fleet-unhealthy"
    assert (request["Namespace"], request["MetricName"]) == ("Spawn/Fleet", "UnhealthyPercent")
    assert request["Threshold"] == 7.5
    assert request["ComparisonOperator"] == "GreaterThanThreshold"
    assert request["AlarmActions"] == request["OKActions"] == ["arn:critical"]
    assert "Dimensions" not in request
    assert request["AlarmDescription"].endswith(MARKER)


def metrics_read(request: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    if "MetricName" in request:
        dims = tuple(d["Name"] for d in request.get("Dimensions", []))
        return [(request["Namespace"], request["MetricName"], dims)]
    return [
        (
            q["MetricStat"]["Metric"]["Namespace"],
            q["MetricStat"]["Metric"]["MetricName"],
            tuple(d["Name"] for d in q["MetricStat"]["Metric"]["Dimensions"]),
        )
        for q in request.get("Metrics", [])
        if "MetricStat" in q
    ]


def test_every_metric_an_alarm_reads_is_published() -> None:
    for spec in alarms():
        for namespace, name, dims in metrics_read(spec.request):
            assert catalog.is_published(namespace, name, dims), spec.name


class _Value(float):
    """A data point as metric math sees it: dividing by zero gives no number (NaN),
    which IF's other branch replaces."""

    def __rtruediv__(self, other: float) -> float:
        return math.nan if self == 0 else float(other) / float(self)


def evaluate(request: dict[str, Any], **points: float | None) -> float:
    """Evaluate an alarm's expressions for one period (IF and FILL, in Python)."""
    values: dict[str, Any] = {k: (None if v is None else _Value(v)) for k, v in points.items()}
    env = {
        "IF": lambda c, t, f=None: t if c else f,
        "FILL": lambda x, v: _Value(v) if x is None else x,
    }
    result: Any = None
    for query in request["Metrics"]:
        if "Expression" in query:
            result = eval(query["Expression"], {"__builtins__": {}}, {**env, **values})  # noqa: S307
            values[query["Id"]] = _Value(result)
    assert isinstance(result, int | float)
    return float(result)


def test_error_rate_is_the_guides_ratio_guarded_against_an_idle_fleet() -> None:
    request = by_name(alarms())["spawn-fleet-error-rate"].request
    assert evaluate(request, errors=None, completed=None) == 0.0  # idle: OK
    assert evaluate(request, errors=0, completed=0) == 0.0
    assert evaluate(request, errors=10, completed=100) == 10.0
    assert evaluate(request, errors=3, completed=None) == 100.0  # all failing
    assert request["Threshold"] == 5.0
    assert request["ComparisonOperator"] == "GreaterThanThreshold"
    assert request["TreatMissingData"] == "notBreaching"


def test_low_throughput_alarms_only_while_arrays_run() -> None:
    request = by_name(alarms(low_throughput_tasks_per_minute=2))["spawn-low-throughput"].request
    # Tasks are summed over 5 minutes: 5 tasks = 1 a minute, under the floor of 2.
    assert evaluate(request, tasks=5, arrays=3) == 1.0
    assert evaluate(request, tasks=None, arrays=1) == 1.0  # running, nothing done
    assert evaluate(request, tasks=50, arrays=3) == 0.0
    assert evaluate(request, tasks=None, arrays=None) == 0.0  # nothing running
    assert evaluate(request, tasks=0, arrays=0) == 0.0
    assert request["Threshold"] == 1.0
    assert request["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_anomaly_alarms_read_their_detectors_model() -> None:
    specs, detectors = fleet_alarms(Settings(), "eu-west-1", Topics(ALERTS, CRITICAL_TOPIC, None))
    models = {(d.region, d.metric["Namespace"], d.metric["MetricName"]) for d in detectors}
    for name in ("spawn-cpu-anomaly", "spawn-cost-anomaly"):
        spec = by_name(specs)[name]
        metric, band = spec.request["Metrics"]
        assert band["Expression"] == "ANOMALY_DETECTION_BAND(m1, 2)"
        assert spec.request["ThresholdMetricId"] == band["Id"]
        watched = metric["MetricStat"]["Metric"]
        assert (spec.region, watched["Namespace"], watched["MetricName"]) in models
        [detector] = [d for d in detectors if d.metric["Namespace"] == watched["Namespace"]]
        assert detector.metric["Dimensions"] == watched["Dimensions"]
        assert detector.metric["Stat"] == metric["MetricStat"]["Stat"]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_billing_alarms_live_in_us_east_1_whatever_the_region(region: str) -> None:
    specs = by_name(alarms(region, daily_cost_limit_usd=250))
    assert specs[DAILY_COST].region == specs[COST_ANOMALY].region == "us-east-1"
    assert specs[DAILY_COST].request["Threshold"] == 250.0
    assert specs[DAILY_COST].request["Dimensions"] == [{"Name": "Currency", "Value": "USD"}]
    others = [s for s in specs.values() if s.name not in (DAILY_COST, COST_ANOMALY)]
    assert {s.region for s in others} == {region}


def test_billing_alarms_notify_only_a_topic_in_us_east_1() -> None:
    here = by_name(alarms("us-east-1"))
    assert here[DAILY_COST].request["AlarmActions"] == [CRITICAL_TOPIC]
    elsewhere = by_name(alarms("eu-west-1"))
    assert elsewhere[DAILY_COST].request["AlarmActions"] == []
    assert elsewhere[COST_ANOMALY].request["AlarmActions"] == []
    configured = by_name(alarms("eu-west-1", billing=BILLING_TOPIC))
    assert configured[DAILY_COST].request["AlarmActions"] == [BILLING_TOPIC]
    assert configured[COST_ANOMALY].request["OKActions"] == [BILLING_TOPIC]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_composite_names_only_alarms_that_exist_in_its_region_and_comes_after_them(
    region: str,
) -> None:
    specs = alarms(region)
    composite = by_name(specs)[CRITICAL]
    assert composite.composite
    assert specs[-1] is composite
    assert composite.children == tuple(
        re.findall(r'ALARM\("([^"]+)"\)', composite.request["AlarmRule"])
    )
    same_region = {s.name for s in specs if s.region == region and not s.composite}
    assert set(composite.children) <= same_region
    expected = {"spawn-fleet-error-rate", "spawn-low-throughput"}
    if region == "us-east-1":
        expected.add(COST_ANOMALY)
    assert set(composite.children) == expected
    assert composite.request["AlarmActions"] == [CRITICAL_TOPIC]
    assert len(composite.request["AlarmRule"]) <= 10240
