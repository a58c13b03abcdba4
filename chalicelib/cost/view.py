"""The `cost` of `GET /arrays/{id}/progress` (SPEC §14), from the stored document.

The fleet tick stores each array's figures (`chalicelib.cost.store`); a read adds the
projection to the ETA, which only the progress view knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

FIELDS = (
    "usd",
    "usd_per_hour",
    "projected_usd",
    "budget_usd",
    "by_lifecycle",
    "on_demand_equivalent_usd",
    "breakdown",
    "price_source",
    "as_of",
)


def empty_cost() -> dict[str, Any]:
    """The cost of an array no tick has priced yet."""
    return {
        "usd": 0.0,
        "usd_per_hour": 0.0,
        "projected_usd": None,
        "budget_usd": None,
        "by_lifecycle": {"spot": 0.0, "on_demand": 0.0},
        "on_demand_equivalent_usd": 0.0,
        "breakdown": {"compute": 0.0, "storage": 0.0, "ipv4": 0.0},
        "price_source": "none",
        "unpriced": {},
        "as_of": None,
    }


def cost_view(
    document: Mapping[str, Any] | None,
    eta_seconds: int | None,
    done: bool,
    now: datetime,
) -> dict[str, Any]:
    """The array's cost as the API shows it.

    `projected_usd` is `usd` plus the current rate from `as_of` until the ETA (`now` +
    `eta_seconds`); null without an ETA, and `usd` itself once the array is finished
    (nothing is left to run), so a finished array's cost does not depend on `now`.
    """
    given: Mapping[str, Any] = document or {}
    stored = {k: given[k] for k in (*FIELDS, "unpriced") if k in given}
    # A dict merge, not `.update`: the policy derivation takes any `.update` call for
    # `Registry.update` (infra/aws_calls.py over-approximates by method name).
    view = {**empty_cost(), **stored}
    usd, rate = float(view["usd"]), float(view["usd_per_hour"])
    if done:
        view["projected_usd"] = usd
    elif eta_seconds is not None:
        as_of = _parse(view["as_of"]) or now
        hours = max(0.0, (now - as_of).total_seconds() + eta_seconds) / 3600
        view["projected_usd"] = round(usd + rate * hours, 6)
    else:
        view["projected_usd"] = None
    return view


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
