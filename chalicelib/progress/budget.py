"""Budget alerts and cost metrics of an array (SPEC §14), from its progress view's `cost`.

Pure, no AWS. `array_budget` fires once per threshold per array: `warning` when the
actual or projected cost reaches 90 % of `budget_usd`, `critical` when the actual cost
reaches 100 %; a jump past both sends both, warning first. The levels sent are kept in
the summary (`Summary.budget_alerted`), saved with the tick's conditional write, so
retries and duplicate ticks send nothing twice. No `cost` or budget: nothing is sent.

Example:
    >>> alerts, flagged = budget_alerts_due(summary, view, now)
    >>> [a.severity for a in alerts], flagged.budget_alerted
    (['warning'], ('warning',))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.alerts.publish import Alert
from chalicelib.contract.catalog import COST
from chalicelib.progress.summary import Summary

NAMESPACE = COST
WARNING_SHARE = 0.9
LEVELS = ("warning", "critical")


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (bool included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _cost(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    cost = view.get("cost")
    return cost if isinstance(cost, Mapping) else None


def budget_levels(cost: Mapping[str, Any]) -> list[str]:
    """The thresholds the cost has reached, in the order they are sent."""
    budget = _number(cost.get("budget_usd"))
    usd = _number(cost.get("usd"))
    if budget is None or budget <= 0 or usd is None:
        return []
    projected = _number(cost.get("projected_usd"))
    reached = max(usd, projected if projected is not None else usd)
    levels = []
    if reached >= WARNING_SHARE * budget or usd >= budget:
        levels.append("warning")
    if usd >= budget:
        levels.append("critical")
    return levels


def budget_alerts_due(
    summary: Summary, view: Mapping[str, Any], now: datetime
) -> tuple[list[Alert], Summary]:
    """The `array_budget` alerts to send now, and the summary with them flagged.

    Returns `summary` itself when nothing is due.
    """
    cost = _cost(view)
    if cost is None:
        return [], summary
    due = [level for level in budget_levels(cost) if level not in summary.budget_alerted]
    if not due:
        return [], summary
    label = view.get("name") or summary.array_id
    usd, budget = float(cost["usd"]), float(cost["budget_usd"])
    projected = _number(cost.get("projected_usd"))
    facts = {key: view[key] for key in view if key != "recent"}
    alerts = []
    for rank, level in enumerate(due, start=LEVELS.index(due[0]) + 1):
        if level == "critical":
            subject = f"Array {label} over budget: ${usd:,.2f} of ${budget:,.2f}"
        else:
            ahead = f", projected ${projected:,.2f}" if projected is not None else ""
            subject = f"Array {label} at {usd / budget * 100:.0f} % of its ${budget:,.2f} budget"
            subject += f" (${usd:,.2f}{ahead})"
        alerts.append(
            Alert(
                "array_budget",
                level,
                subject,
                facts,
                summary.array_id,
                now,
                # Warning and critical of one tick share type, array and time: the
                # level keeps them two feed entries, the rank warning's first.
                dedupe_key=f"budget-{rank}-{level}",
            )
        )
    flagged = tuple(level for level in LEVELS if level in summary.budget_alerted or level in due)
    return alerts, replace(summary, budget_alerted=flagged)


def cost_figures(view: Mapping[str, Any]) -> dict[str, tuple[MetricUnit, float]]:
    """`Spawn/Cost ArrayCostUSD` of an array's view; empty without a cost."""
    cost = _cost(view)
    usd = None if cost is None else _number(cost.get("usd"))
    return {} if usd is None else {"ArrayCostUSD": (MetricUnit.NoUnit, round(usd, 6))}
