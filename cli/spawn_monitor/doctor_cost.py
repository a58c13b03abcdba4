"""`doctor`'s part of cost per array (SPEC §14): the tag check and what the feature adds.

- Cost Explorer groups the bill by `spawn:job-array-id` only once that tag is an active
  cost allocation tag; `tag_check` says whether it is, and how to activate it.
- `feature_estimate` prices what cost per array adds to the monitoring's own bill, apart
  from the CloudWatch items (its `Spawn/Cost` series are counted with the others):
  Cost Explorer requests ($0.01 each: the daily `billed_costs` job's tag check and
  pages) and the price cache's DynamoDB writes (one per distinct instance type and
  zone running, each time a cached price expires).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spawn_monitor.pricing import PRICE_LIST

ARRAY_TAG = "spawn:job-array-id"
ACTIVATE = (
    "aws ce update-cost-allocation-tags-status --cost-allocation-tags-status "
    f"TagKey={ARRAY_TAG},Status=Active (or Billing console > Cost allocation tags); "
    "Cost Explorer groups by it from then on, within 24 hours"
)
# The daily `billed_costs` job: one tag check, and one page of GetCostAndUsage for a
# fleet whose arrays of the last 14 days fit a page (more pages cost more, at most
# BILLED_MAX_CALLS a run).
BILLED_RUNS_PER_MONTH = 30
# Assumed: a cached spot price lives an hour, so each (type, zone) pair is priced and
# written again 730 times a month (the cost engine's TTL; on-demand prices live longer).
PRICE_REFRESHES_PER_MONTH = 730


@dataclass(frozen=True)
class FeatureUsage:
    """What cost per array does a month."""

    ce_requests: int = 0
    price_pairs: int = 0

    @property
    def price_cache_writes(self) -> int:
        return self.price_pairs * PRICE_REFRESHES_PER_MONTH


def tag_check(ce: Any) -> tuple[str, str, str]:
    """(status, detail, fix) of the cost allocation tag, from `ListCostAllocationTags`."""
    response = ce.list_cost_allocation_tags(TagKeys=[ARRAY_TAG], Type="UserDefined")
    found = [t for t in response.get("CostAllocationTags", []) if t.get("TagKey") == ARRAY_TAG]
    if not found:
        return (
            "warn",
            f"Cost Explorer has not seen the tag {ARRAY_TAG} yet, so billed_usd stays empty",
            "it appears within a day of a tagged instance's first cost; then " + ACTIVATE,
        )
    if found[0].get("Status") == "Active":
        return ("ok", f"{ARRAY_TAG} is an active cost allocation tag: billed_usd is filled", "")
    return ("warn", f"{ARRAY_TAG} is an inactive cost allocation tag: no billed_usd", ACTIVATE)


def feature_usage(tag_active: bool, running: Iterable[Mapping[str, Any]]) -> FeatureUsage:
    """The month's usage from the tag's state and the instances running now."""
    pairs = {
        (i.get("InstanceType"), i.get("Placement", {}).get("AvailabilityZone")) for i in running
    }
    per_run = 2 if tag_active else 1
    return FeatureUsage(ce_requests=per_run * BILLED_RUNS_PER_MONTH, price_pairs=len(pairs))


def feature_estimate(usage: FeatureUsage) -> dict[str, float]:
    """USD a month by item and in `total`, at list prices."""
    request = float(PRICE_LIST["cost_explorer"]["request"])
    write = float(PRICE_LIST["dynamodb"]["write_request_units_per_million"]) / 1e6
    items = {
        "cost_explorer": usage.ce_requests * request,
        "price_cache": usage.price_cache_writes * write,
    }
    return {**{k: round(v, 4) for k, v in items.items()}, "total": round(sum(items.values()), 4)}
