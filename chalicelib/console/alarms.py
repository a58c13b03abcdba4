"""Fleet alarms as data: the exact requests, and the region each one lives in.

The unhealthy, error-rate, low-throughput, CPU and cost alarms and the
`spawn-critical-issues` composite; billing alarms live in us-east-1 whatever the
stack's region. Every description ends with `MARKER`, so setup knows its own alarms and
never touches anyone else's. Details: docs/operations.md (the alarms' table and
"Billing metrics exist only in us-east-1").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.console.dashboards import ERROR_RATE_THRESHOLD_PERCENT
from chalicelib.contract import catalog
from chalicelib.contract.catalog import BILLING, EC2, FLEET, WORKER_METRICS, UnpublishedMetric
from chalicelib.core.clients import BILLING_REGION
from chalicelib.core.settings import Settings

MARKER = "[spawn-fleet-monitor console]"
UNHEALTHY = "spawn-fleet-unhealthy"
ERROR_RATE = "spawn-fleet-error-rate"
LOW_THROUGHPUT = "spawn-low-throughput"
DAILY_COST = "spawn-daily-cost-limit"
CPU_ANOMALY = "spawn-cpu-anomaly"
COST_ANOMALY = "spawn-cost-anomaly"
CRITICAL = "spawn-critical-issues"
ANOMALY_BAND_WIDTH = 2
EC2_COST = ({"Name": "Currency", "Value": "USD"}, {"Name": "ServiceName", "Value": "AmazonEC2"})
USD = ({"Name": "Currency", "Value": "USD"},)
_RULE_CHILD = re.compile(r'ALARM\("([^"]+)"\)')


@dataclass(frozen=True)
class Topics:
    """Alarm actions: the stack's topics, and the us-east-1 topic billing alarms use."""

    alerts: str
    critical: str
    billing: str | None


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: where it lives and the exact Put request."""

    region: str
    request: dict[str, Any]
    composite: bool = False

    @property
    def name(self) -> str:
        return str(self.request["AlarmName"])

    @property
    def children(self) -> tuple[str, ...]:
        """Alarms a composite's rule names (none for a metric alarm)."""
        return children_of(str(self.request.get("AlarmRule", "")))


@dataclass(frozen=True)
class DetectorSpec:
    """An anomaly detector: its region and the `SingleMetricAnomalyDetector`."""

    region: str
    metric: dict[str, Any] = field(default_factory=dict)


def children_of(rule: str) -> tuple[str, ...]:
    """Alarm names an `AlarmRule` refers to (quoted, as this module writes them)."""
    return tuple(_RULE_CHILD.findall(rule))


def owns(alarm: Mapping[str, Any]) -> bool:
    """Whether a described alarm is one setup made (its description carries `MARKER`)."""
    return str(alarm.get("AlarmDescription") or "").endswith(MARKER)


def _describe(text: str) -> str:
    return f"{text} {MARKER}"


def _actions(topic: str | None) -> dict[str, Any]:
    arns = [topic] if topic else []
    return {
        "ActionsEnabled": True,
        "AlarmActions": arns,
        "OKActions": arns,
        "InsufficientDataActions": [],
    }


def _stat(
    query_id: str,
    namespace: str,
    name: str,
    stat: str,
    period: int,
    dimensions: tuple[dict[str, str], ...] = (),
    *,
    returned: bool = False,
) -> dict[str, Any]:
    """A metric query of an alarm, checked against the published list."""
    if not catalog.is_published(namespace, name, [d["Name"] for d in dimensions]):
        raise UnpublishedMetric(f"an alarm reads {namespace} {name}, which is not published")
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": list(dimensions)},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": returned,
    }


def _expression(query_id: str, expression: str, label: str, returned: bool) -> dict[str, Any]:
    return {"Id": query_id, "Expression": expression, "Label": label, "ReturnData": returned}


def fleet_alarm_request(threshold: float, critical_topic_arn: str) -> dict[str, Any]:
    """`spawn-fleet-unhealthy`: `UnhealthyPercent` above the threshold, 2 minutes running."""
    if not catalog.is_published(FLEET, "UnhealthyPercent", ()):
        raise UnpublishedMetric("Spawn/Fleet UnhealthyPercent is not published")
    return {
        "AlarmName": UNHEALTHY,
        "AlarmDescription": _describe(
            f"More than {threshold:g} % of the running spawn fleet fails a status check."
        ),
        "Namespace": FLEET,
        "MetricName": "UnhealthyPercent",
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        **_actions(critical_topic_arn),
    }


def error_rate_request(topic: str) -> dict[str, Any]:
    return {
        "AlarmName": ERROR_RATE,
        "AlarmDescription": _describe(
            f"Workers' errors exceed {ERROR_RATE_THRESHOLD_PERCENT:g} % of tasks completed "
            "(Spawn/Workers ErrorCount / TasksCompleted, fleet-wide, 2 of 5-minute periods)."
        ),
        "Metrics": [
            _stat("errors", WORKER_METRICS, "ErrorCount", "Sum", 300),
            _stat("completed", WORKER_METRICS, "TasksCompleted", "Sum", 300),
            _expression("err", "FILL(errors, 0)", "errors", False),
            _expression("done", "FILL(completed, 0)", "tasks completed", False),
            _expression(
                "rate",
                "IF(done > 0, 100 * err / done, IF(err > 0, 100, 0))",
                "errors per 100 tasks",
                True,
            ),
        ],
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": ERROR_RATE_THRESHOLD_PERCENT,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        **_actions(topic),
    }


def low_throughput_request(floor: float, topic: str) -> dict[str, Any]:
    return {
        "AlarmName": LOW_THROUGHPUT,
        "AlarmDescription": _describe(
            f"Fewer than {floor:g} tasks a minute fleet-wide for 15 minutes while arrays "
            "are running (Spawn/Workers TasksCompleted, Spawn/Fleet ActiveArrays)."
        ),
        "Metrics": [
            _stat("tasks", WORKER_METRICS, "TasksCompleted", "Sum", 300),
            _stat("arrays", FLEET, "ActiveArrays", "Maximum", 300),
            _expression("perminute", "FILL(tasks, 0) / 5", "tasks per minute", False),
            _expression(
                "slow",
                f"IF(FILL(arrays, 0) > 0, IF(perminute < {floor:g}, 1, 0), 0)",
                "arrays running below the floor",
                True,
            ),
        ],
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 3,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        **_actions(topic),
    }


def daily_cost_request(limit: float, topic: str | None) -> dict[str, Any]:
    if not catalog.is_published(BILLING, "EstimatedCharges", ("Currency",)):
        raise UnpublishedMetric("AWS/Billing EstimatedCharges is not in the list")
    return {
        "AlarmName": DAILY_COST,
        "AlarmDescription": _describe(
            f"Estimated charges (USD, month to date) above {limit:g}; AWS/Billing "
            "metrics exist in us-east-1 only, once billing alerts are enabled."
        ),
        "Namespace": BILLING,
        "MetricName": "EstimatedCharges",
        "Dimensions": list(USD),
        "Statistic": "Maximum",
        "Period": 21600,
        "EvaluationPeriods": 1,
        "Threshold": float(limit),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        **_actions(topic),
    }


def _anomaly_request(
    name: str,
    text: str,
    metric: dict[str, Any],
    evaluation_periods: int,
    comparison: str,
    topic: str | None,
) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmDescription": _describe(text),
        "Metrics": [
            metric,
            _expression(
                "band", f"ANOMALY_DETECTION_BAND(m1, {ANOMALY_BAND_WIDTH})", "expected", True
            ),
        ],
        "ThresholdMetricId": "band",
        "EvaluationPeriods": evaluation_periods,
        "ComparisonOperator": comparison,
        "TreatMissingData": "notBreaching",
        **_actions(topic),
    }


def _detector(query: dict[str, Any]) -> dict[str, Any]:
    metric = query["MetricStat"]["Metric"]
    return {
        "Namespace": metric["Namespace"],
        "MetricName": metric["MetricName"],
        "Dimensions": list(metric["Dimensions"]),
        "Stat": query["MetricStat"]["Stat"],
    }


def fleet_alarms(
    settings: Settings, region: str, topics: Topics
) -> tuple[list[AlarmSpec], list[DetectorSpec]]:
    """Every fleet alarm (children before the composite) and every anomaly detector."""
    cpu = _stat("m1", EC2, "CPUUtilization", "Average", 300, returned=True)
    cost = _stat("m1", BILLING, "EstimatedCharges", "Maximum", 21600, EC2_COST, returned=True)
    billing_in_region = region == BILLING_REGION
    alarms = [
        AlarmSpec(
            region, fleet_alarm_request(settings.unhealthy_percent_threshold, topics.critical)
        ),
        AlarmSpec(region, error_rate_request(topics.alerts)),
        AlarmSpec(
            region, low_throughput_request(settings.low_throughput_tasks_per_minute, topics.alerts)
        ),
        AlarmSpec(
            BILLING_REGION,
            daily_cost_request(
                settings.daily_cost_limit_usd,
                topics.critical if billing_in_region else topics.billing,
            ),
        ),
        AlarmSpec(
            region,
            _anomaly_request(
                CPU_ANOMALY,
                "Fleet CPU outside its expected band (AWS/EC2 CPUUtilization over "
                "instances with detailed monitoring).",
                cpu,
                2,
                "LessThanLowerOrGreaterThanUpperThreshold",
                topics.alerts,
            ),
        ),
        AlarmSpec(
            BILLING_REGION,
            _anomaly_request(
                COST_ANOMALY,
                "EC2 estimated charges above their expected band (us-east-1 only).",
                cost,
                1,
                "GreaterThanUpperThreshold",
                topics.alerts if billing_in_region else topics.billing,
            ),
        ),
    ]
    children = [ERROR_RATE, LOW_THROUGHPUT] + ([COST_ANOMALY] if billing_in_region else [])
    rule = " OR ".join(f'ALARM("{child}")' for child in children)
    alarms.append(
        AlarmSpec(
            region,
            {
                "AlarmName": CRITICAL,
                "AlarmDescription": _describe(
                    "Critical: " + ", ".join(children) + " (any of them in ALARM)."
                ),
                "AlarmRule": rule,
                **_actions(topics.critical),
            },
            composite=True,
        )
    )
    detectors = [
        DetectorSpec(region, _detector(cpu)),
        DetectorSpec(BILLING_REGION, _detector(cost)),
    ]
    return alarms, detectors
