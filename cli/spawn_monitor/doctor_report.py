"""`spawn-monitor doctor`'s report: the checks as a table, then the cost estimate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from spawn_monitor.doctor_cost import FeatureUsage, feature_estimate
from spawn_monitor.pricing import PRICES, Usage, estimate

if TYPE_CHECKING:
    from rich.console import Console

    from spawn_monitor.doctor import Check


ICONS = {
    "ok": ("✔", "green"),
    "fail": ("✘", "red"),
    "warn": ("!", "yellow"),
    "note": ("i", "blue"),
    "skip": ("-", "grey50"),
}


def report(
    checks: list[Check], usage: Usage, console: Console, feature: FeatureUsage | None = None
) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in checks:
        icon, colour = ICONS[check.status]
        detail = Text(check.detail)
        if check.fix:
            detail.append(f"\nfix: {check.fix}", style="cyan")
        table.add_row(Text(icon, style=colour), Text(check.name, style="bold"), detail)
    console.print(table)
    cost = estimate(usage)
    console.print(
        Text(
            f"\nEstimated CloudWatch cost of this monitoring: ${cost['total']:.2f}/month "
            "(list prices, before the free tier)",
            style="bold",
        )
    )
    lines = Table(show_header=False, box=None)
    lines.add_column("item")
    lines.add_column("usd", justify="right")
    lines.add_column("counted")
    lines.add_row(
        "alarms",
        f"${cost['alarms']:.2f}",
        f"{usage.standard_alarms} standard, {usage.high_resolution_alarms} high-resolution, "
        f"{usage.anomaly_alarms} anomaly, {usage.composite_alarms} composite, "
        f"{usage.query_alarm_metrics} metrics analyzed by query alarms",
    )
    lines.add_row(
        "custom metrics", f"${cost['custom_metrics']:.2f}", f"{usage.metric_series} series"
    )
    lines.add_row(
        "coverage check",
        f"${cost['coverage_check']:.2f}",
        f"{usage.coverage_metrics_per_month} metrics queried a month",
    )
    lines.add_row("dashboards", f"${cost['dashboards']:.2f}", str(usage.dashboards))
    lines.add_row(
        "log ingestion", f"${cost['log_ingestion']:.2f}", f"{usage.log_gb_per_month:.2f} GB a month"
    )
    console.print(lines)
    console.print(
        Text(f"  prices: {PRICES.source}, as of {PRICES.as_of}; free tier: {PRICES.free_tier}")
    )
    if feature is not None:
        extra = feature_estimate(feature)
        console.print(
            Text(
                f"Cost per array adds, besides: ${extra['total']:.2f}/month "
                f"({feature.ce_requests} Cost Explorer requests at $0.01, "
                f"{feature.price_cache_writes} price cache writes for {feature.price_pairs} "
                "instance type and zone pairs; its Spawn/Cost series are in custom metrics)"
            )
        )
    failed = sum(1 for c in checks if c.status == "fail")
    console.print(
        Text(
            f"\n{failed} check(s) failed" if failed else "\nall checks passed",
            style="bold red" if failed else "bold green",
        )
    )
