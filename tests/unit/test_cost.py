"""The cost model (`bench/cost.py`): prices from the one price list, arithmetic by design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cost import HOURS, Measured, monthly
from spawn_monitor.doctor import COVERAGE_RUNS_PER_MONTH

PRICES = json.loads(
    (Path(__file__).parents[2] / "cli" / "spawn_monitor" / "prices.json").read_text()
)
DYNAMODB = PRICES["dynamodb"]
MEASURED = Measured(
    worker_hour={
        "guide": {"PutMetricData": 1180, "PutItem": 102},
        "per-instance": {"PutMetricData": 58, "PutItem": 29},
        "fleet-query": {"PutMetricData": 58, "PutItem": 29},
    },
    lifecycle_per_instance={
        "guide": {"DescribeInstances": 1, "PutMetricAlarm": 2, "DeleteAlarms": 1},
        "per-instance": {"PutMetricAlarm": 2, "DeleteAlarms": 0.01, "UpdateItem": 2},
        "fleet-query": {"DescribeAlarms": 0.01, "UpdateItem": 2},
    },
    batches_per_instance=0.02,
    scan_rru_per_row=0.05,
    tick_calls_per_array={"Query": 1, "BatchGetItem": 1},
    registry_rru_per_instance=0.1,
)


def test_alarms_are_priced_from_the_price_list() -> None:
    per_metric = PRICES["cloudwatch"]["metrics_insights_alarm_per_metric_analyzed"]
    standard = PRICES["cloudwatch"]["standard_alarm"]
    quiet = Measured(**{**MEASURED.__dict__, "worker_hour": {d: {} for d in MEASURED.worker_hour}})
    fleet = monthly("fleet-query", 1000, quiet)["CloudWatch"]
    ours = monthly("per-instance", 1000, quiet)["CloudWatch"]
    coverage = (
        COVERAGE_RUNS_PER_MONTH * 1000 * PRICES["cloudwatch"]["get_metric_data_per_1000_metrics"]
    )
    assert fleet == pytest.approx(
        2 * 1000 * per_metric + 30.4 * 1000 * 0.01 / 1000 * 0.01 + coverage / 1000, rel=0.01
    )
    assert ours > 2 * 1000 * standard


def test_worker_metrics_dominate_and_are_priced_per_call() -> None:
    guide = monthly("guide", 1000, MEASURED)["CloudWatch"]
    put_metric_data = 1180 * 1000 * HOURS / 1000 * PRICES["cloudwatch"]["put_metric_data_per_1000"]
    assert guide == pytest.approx(put_metric_data + 2 * 1000 * 0.10, rel=0.01)


def test_the_guide_monitor_scans_grow_with_fleet_and_watchers() -> None:
    small = monthly("guide", 100, MEASURED)["DynamoDB"]
    large = monthly("guide", 1000, MEASURED)["DynamoDB"]

    # Ten times the rows, scanned by ten times the watchers: reads grow a hundredfold.
    def reads(n: int) -> float:
        return (n / 100) * HOURS * 360 * n * 0.05 / 1e6 * DYNAMODB["read_request_units_per_million"]

    def writes(n: int) -> float:  # each worker's progress PutItems
        return 102 * n * HOURS / 1e6 * DYNAMODB["write_request_units_per_million"]

    assert large - small == pytest.approx(
        reads(1000) - reads(100) + writes(1000) - writes(100), rel=0.01
    )
