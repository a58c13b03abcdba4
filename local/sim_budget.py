"""Budgets in the demo: `spawn:cost-limit` on simulated arrays (SPEC §14).

spawn writes `spawn:cost-limit` (USD, a per-instance cap) on each instance; the array's
`budget_usd` is the sum over its members. The demo's `train` array (6 on-demand
g4dn.xlarge, each worker busy 42 to 78 s) carries a cap chosen so that every round
reaches 90 % of its budget and sends an `array_budget` warning: at $0.526 an hour
(us-east-1 on-demand) the 60-second minimum alone makes each instance cost $0.00877,
90 % of $0.0097. A round whose workers average over ~66 s also reaches 100 % and sends
the critical alert (about one round in five).
"""

from __future__ import annotations

COST_LIMIT_TAG = "spawn:cost-limit"
TRAIN_COST_LIMIT_USD = 0.0097


def cost_limit_tags(limit_usd: float | None) -> list[dict[str, str]]:
    """The instance tag spawn writes for a per-instance cap, or none without one."""
    if limit_usd is None:
        return []
    return [{"Key": COST_LIMIT_TAG, "Value": f"{limit_usd:g}"}]
