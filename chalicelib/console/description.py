"""The whole console described once, as data (pure: no AWS call).

`describe` gathers dashboards, fleet alarms, anomaly detectors, log groups, metric
filters and saved queries for one deployment. Setup compares this description with
what exists and changes only the difference (`chalicelib.console.plan`).

Example:
    >>> deployment = Deployment("eu-west-1", "123456789012", topics)
    >>> console = describe(Settings(), deployment, [], datetime.now(UTC))
    >>> sorted(console.dashboards)
    ['spawn-fleet']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.alarms.per_instance import partition_of
from chalicelib.console import dashboards, logs
from chalicelib.console.alarms import AlarmSpec, DetectorSpec, Topics, fleet_alarms
from chalicelib.console.arrays import ArrayState
from chalicelib.console.logs import LogGroup, MetricFilter, SavedQuery
from chalicelib.core.settings import Settings


@dataclass(frozen=True)
class Deployment:
    """Where the console lives: the stack's region and account, and alarm topics."""

    region: str
    account_id: str
    topics: Topics


@dataclass(frozen=True)
class Console:
    """Everything setup creates and keeps in step."""

    dashboards: Mapping[str, str]
    alarms: tuple[AlarmSpec, ...]
    detectors: tuple[DetectorSpec, ...]
    log_groups: tuple[LogGroup, ...]
    metric_filters: tuple[MetricFilter, ...]
    saved_queries: tuple[SavedQuery, ...]


def alarm_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:{partition_of(region)}:cloudwatch:{region}:{account_id}:alarm:{name}"


def array_dashboards(
    settings: Settings, region: str, arrays: Iterable[ArrayState], now: datetime
) -> dict[str, str]:
    """Name → body of the dashboard of every array not yet past its retention."""
    retention = timedelta(hours=settings.array_dashboard_retention_hours)
    return {
        dashboards.array_dashboard_name(array.array_id): dashboards.body_json(
            dashboards.array_dashboard(array.array_id, region)
        )
        for array in arrays
        if not array.expired(now, retention)
    }


def describe(
    settings: Settings,
    deployment: Deployment,
    arrays: Iterable[ArrayState],
    now: datetime,
) -> Console:
    """The console for this deployment and these arrays, as of `now` (dashboards of
    arrays past their retention are left out)."""
    region = deployment.region
    alarms, detectors = fleet_alarms(settings, region, deployment.topics)
    shown = [
        alarm_arn(a.region, deployment.account_id, a.name) for a in alarms if a.region == region
    ]
    fleet = dashboards.fleet_dashboard(
        region,
        dashboards.FleetFigures(
            unhealthy_percent=settings.unhealthy_percent_threshold,
            daily_cost_limit_usd=settings.daily_cost_limit_usd,
            tasks_per_minute_floor=settings.low_throughput_tasks_per_minute,
        ),
        shown,
        logs.errors_widget_query(),
    )
    return Console(
        dashboards={
            dashboards.FLEET_DASHBOARD: dashboards.body_json(fleet),
            **array_dashboards(settings, region, arrays, now),
        },
        alarms=tuple(alarms),
        detectors=tuple(detectors),
        log_groups=logs.log_groups(settings),
        metric_filters=logs.metric_filters(),
        saved_queries=logs.saved_queries(),
    )
