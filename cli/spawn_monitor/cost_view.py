"""An array's cost as the CLI shows it (SPEC §14 `cost`): so far, rate, projected, budget.

`arrays` gets a `cost` column, `watch` a cost line, only when the API's bodies carry a
`cost` (a backend without cost per array shows as before). Figures reaching 90 % of the
budget are yellow, 100 % red, as the `array_budget` alerts fire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def cost_of(progress: Mapping[str, Any]) -> Mapping[str, Any] | None:
    cost = progress.get("cost")
    return cost if isinstance(cost, Mapping) and _usd(cost.get("usd")) is not None else None


def has_cost(arrays: Sequence[Mapping[str, Any]]) -> bool:
    return any(cost_of(a) is not None for a in arrays)


def budget_style(cost: Mapping[str, Any]) -> str:
    """red once the cost reached the budget, yellow once it or the projection reached 90 %."""
    budget, usd = _usd(cost.get("budget_usd")), _usd(cost.get("usd"))
    if budget is None or budget <= 0 or usd is None:
        return ""
    projected = _usd(cost.get("projected_usd"))
    if usd >= budget:
        return "bold red"
    return "yellow" if max(usd, projected or 0.0) >= 0.9 * budget else ""


def cost_cell(progress: Mapping[str, Any]) -> Text:
    """`$4.20 $1.50/h → $9.80 / $10.00`: so far, rate, projected, budget (what is known)."""
    cost = cost_of(progress)
    if cost is None:
        return Text("—")
    usd = _usd(cost.get("usd")) or 0.0
    shown = Text(_money(usd), style=budget_style(cost))
    rate = _usd(cost.get("usd_per_hour"))
    if rate is not None and progress.get("finished_at") is None:
        shown.append(f" {_money(rate)}/h")
    projected = _usd(cost.get("projected_usd"))
    if projected is not None and progress.get("finished_at") is None:
        shown.append(f" → {_money(projected)}")
    budget = _usd(cost.get("budget_usd"))
    if budget is not None:
        shown.append(f" / {_money(budget)}")
    return shown


def cost_line(progress: Mapping[str, Any]) -> Text | None:
    """`watch`'s cost line, or None when the body has no cost."""
    cost = cost_of(progress)
    if cost is None:
        return None
    usd = _usd(cost.get("usd")) or 0.0
    line = Text("cost ").append(f"{_money(usd)} so far", style=budget_style(cost) or "bold")
    rate = _usd(cost.get("usd_per_hour"))
    if rate is not None:
        line.append(f"   rate {_money(rate)}/h")
    projected = _usd(cost.get("projected_usd"))
    if projected is not None and progress.get("finished_at") is None:
        line.append(f"   projected {_money(projected)}")
    budget = _usd(cost.get("budget_usd"))
    if budget is not None and budget > 0:
        line.append(f"   budget {_money(budget)} ({math.floor(usd / budget * 100)} % used)")
    on_demand = _usd(cost.get("on_demand_equivalent_usd"))
    if on_demand is not None and on_demand > usd:
        line.append(f"   on-demand would be {_money(on_demand)}", style="grey50")
    billed = _usd(cost.get("billed_usd"))
    if billed is not None:
        error = _usd(cost.get("billed_error_percent"))
        line.append(f"   billed {_money(billed)}")
        if error is not None:
            line.append(f" (estimate {error:+.1f} %)")
    source = cost.get("price_source")
    if isinstance(source, str) and source:
        line.append(f"   prices: {source}", style="grey50")
    return line
