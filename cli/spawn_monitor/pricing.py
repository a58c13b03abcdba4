"""The monitoring's own CloudWatch cost: list prices (`prices.json`) and the estimate.

Pure: `estimate(Usage(...))` prices what `spawn-monitor doctor` counted; the backend's
cost benchmark (`bench/cost.py`) reads the same price list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

# Runs of fleet-query's coverage check a month: reconcile every 15 minutes, setup every
# 6 hours (730 hours a month).
COVERAGE_RUNS_PER_MONTH = round(730 * 4 + 730 / 6)
# AWS's list prices, with their source and date, in one data file that this package ships
# and the backend's cost benchmark (`bench/cost.py`) reads too.
PRICE_LIST: dict[str, Any] = json.loads(
    resources.files("spawn_monitor").joinpath("prices.json").read_text()
)


@dataclass(frozen=True)
class Prices:
    """CloudWatch list prices in USD a month (us-east-1); other regions differ a little.
    Read from `prices.json`."""

    source: str = "https://aws.amazon.com/cloudwatch/pricing/ (us-east-1, standard tier)"
    as_of: str = PRICE_LIST["as_of"]
    standard_alarm: float = PRICE_LIST["cloudwatch"]["standard_alarm"]  # per metric evaluated
    high_resolution_alarm: float = PRICE_LIST["cloudwatch"]["high_resolution_alarm"]
    anomaly_alarm: float = PRICE_LIST["cloudwatch"]["anomaly_alarm"]  # evaluates 3 metrics
    composite_alarm: float = PRICE_LIST["cloudwatch"]["composite_alarm"]
    query_alarm_metric: float = PRICE_LIST["cloudwatch"][
        "metrics_insights_alarm_per_metric_analyzed"
    ]
    custom_metric: float = PRICE_LIST["cloudwatch"]["custom_metric"]  # per series, first 10,000
    # GetMetricData, per metric requested (a Metrics Insights query: per metric analyzed).
    metric_requested: float = PRICE_LIST["cloudwatch"]["get_metric_data_per_1000_metrics"] / 1000
    dashboard: float = PRICE_LIST["cloudwatch"]["dashboard"]
    log_ingestion_gb: float = PRICE_LIST["cloudwatch"]["log_ingestion_gb"]
    free_tier: str = PRICE_LIST["free_tier"]


PRICES = Prices()


@dataclass(frozen=True)
class Usage:
    """What the cost estimate counts."""

    standard_alarms: int = 0
    high_resolution_alarms: int = 0
    anomaly_alarms: int = 0
    composite_alarms: int = 0
    query_alarm_metrics: int = 0  # metrics Metrics Insights alarms analyze
    # fleet-query's coverage check: its query (GetMetricData) on every reconcile and setup
    # run analyzes one metric per running instance.
    coverage_metrics_per_month: int = 0
    metric_series: int = 0
    dashboards: int = 0
    log_gb_per_month: float = 0.0


def estimate(usage: Usage, prices: Prices = PRICES) -> dict[str, float]:
    """Monthly cost by item and in `total`, at list prices before the free tier."""
    items = {
        "alarms": usage.standard_alarms * prices.standard_alarm
        + usage.high_resolution_alarms * prices.high_resolution_alarm
        + usage.anomaly_alarms * prices.anomaly_alarm
        + usage.composite_alarms * prices.composite_alarm
        + usage.query_alarm_metrics * prices.query_alarm_metric,
        "custom_metrics": usage.metric_series * prices.custom_metric,
        "coverage_check": usage.coverage_metrics_per_month * prices.metric_requested,
        "dashboards": usage.dashboards * prices.dashboard,
        "log_ingestion": usage.log_gb_per_month * prices.log_ingestion_gb,
    }
    rounded = {k: round(v, 2) for k, v in items.items()}
    return {**rounded, "total": round(sum(items.values()), 2)}
