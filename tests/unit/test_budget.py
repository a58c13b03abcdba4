"""The pure part of budget alerts and cost metrics (chalicelib.progress.budget)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.fleet.health import fleet_cost_figures
from chalicelib.progress.budget import budget_alerts_due, budget_levels, cost_figures
from chalicelib.progress.summary import Summary

NOW = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)


def view(usd: Any, projected: Any = None, budget: Any = 10.0) -> dict[str, Any]:
    cost = {"usd": usd, "projected_usd": projected, "budget_usd": budget}
    return {"array_id": "a", "name": "render", "recent": [], "cost": cost}


@pytest.mark.parametrize(
    ("usd", "projected", "budget", "levels"),
    [
        (8.99, None, 10.0, []),
        (9.0, None, 10.0, ["warning"]),
        (1.0, 9.0, 10.0, ["warning"]),
        (1.0, 50.0, 10.0, ["warning"]),  # projected never makes it critical
        (10.0, None, 10.0, ["warning", "critical"]),
        (12.0, 3.0, 10.0, ["warning", "critical"]),
        (50.0, 60.0, None, []),
        (50.0, 60.0, 0, []),
        (float("nan"), None, 10.0, []),
        ("12", None, 10.0, []),
        (True, None, 1.0, []),
        (12.0, None, "10", []),
    ],
)
def test_budget_levels(usd: Any, projected: Any, budget: Any, levels: list[str]) -> None:
    assert budget_levels(view(usd, projected, budget)["cost"]) == levels


def test_levels_already_sent_are_not_due_again_and_the_flags_only_grow() -> None:
    summary = Summary.new("a")
    alerts, flagged = budget_alerts_due(summary, view(9.5), NOW)
    assert [(a.event_type, a.severity) for a in alerts] == [("array_budget", "warning")]
    assert "90 %" not in alerts[0].subject
    assert alerts[0].subject.startswith("Array render at 95 % of its $10.00 budget")
    again, same = budget_alerts_due(flagged, view(9.6), NOW)
    assert again == []
    assert same is flagged
    alerts, flagged = budget_alerts_due(flagged, view(10.5), NOW)
    assert [a.severity for a in alerts] == ["critical"]
    assert flagged.budget_alerted == ("warning", "critical")
    # The cost falling back (a corrected price) re-arms nothing.
    assert budget_alerts_due(flagged, view(1.0), NOW)[0] == []


def test_a_jump_past_both_gives_warning_then_critical_with_distinct_feed_keys() -> None:
    alerts, flagged = budget_alerts_due(Summary.new("a"), view(11.0), NOW)
    assert [a.severity for a in alerts] == ["warning", "critical"]
    keys = [a.dedupe_key for a in alerts]
    assert len(set(keys)) == 2
    assert keys == sorted(keys)  # the feed (newest first by key) shows warning first
    assert "recent" not in alerts[0].details
    assert flagged.budget_alerted == ("warning", "critical")


def test_a_view_without_cost_sends_nothing_and_publishes_nothing() -> None:
    summary = Summary.new("a")
    assert budget_alerts_due(summary, {"array_id": "a", "name": None}, NOW) == ([], summary)
    assert cost_figures({"array_id": "a"}) == {}
    assert cost_figures({"cost": {"usd": None}}) == {}
    assert cost_figures(view(1.25))["ArrayCostUSD"][1] == 1.25


def test_fleet_cost_figures_need_a_numeric_rate() -> None:
    assert fleet_cost_figures({}) == {}
    assert fleet_cost_figures({"cost": None}) == {}
    assert fleet_cost_figures({"cost": {"usd_per_hour": float("inf")}}) == {}
    assert fleet_cost_figures({"cost": {"usd_per_hour": 3}})["FleetCostRateUSDPerHour"][1] == 3.0


def test_the_demos_train_budget_is_reached_to_90_percent_by_the_60_second_minimum() -> None:
    """local.sim_budget's claim: 6 on-demand g4dn.xlarge at $0.526/h billed at least 60 s
    each reach 90 % of their summed `spawn:cost-limit`, so every round warns."""
    from local.sim_budget import TRAIN_COST_LIMIT_USD
    from local.simulator import DEFAULT_ARRAYS

    [train] = [plan for plan in DEFAULT_ARRAYS if plan.cost_limit_usd is not None]
    budget = train.size * TRAIN_COST_LIMIT_USD
    floor = train.size * 0.526 * 60 / 3600
    assert floor >= 0.9 * budget
    most = train.size * 0.526 * train.task_seconds * 1.3 / 3600
    assert budget_levels({"usd": floor, "budget_usd": budget}) == ["warning"]
    assert budget_levels({"usd": most, "budget_usd": budget}) == ["warning", "critical"]
