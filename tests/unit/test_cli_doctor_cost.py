"""`doctor`'s cost-per-array part: the cost allocation tag and what the feature costs."""

from __future__ import annotations

from typing import Any

import pytest

from spawn_monitor.doctor_cost import (
    PRICE_REFRESHES_PER_MONTH,
    FeatureUsage,
    feature_estimate,
    feature_usage,
    tag_check,
)


class FakeCe:
    def __init__(self, tags: list[dict[str, Any]]) -> None:
        self.tags = tags
        self.requests: list[dict[str, Any]] = []

    def list_cost_allocation_tags(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"CostAllocationTags": self.tags}


@pytest.mark.parametrize(
    ("tags", "status", "says"),
    [
        ([{"TagKey": "spawn:job-array-id", "Status": "Active"}], "ok", "active"),
        ([{"TagKey": "spawn:job-array-id", "Status": "Inactive"}], "warn", "inactive"),
        ([], "warn", "not seen"),
    ],
)
def test_the_tag_check_says_how_to_activate_an_inactive_tag(
    tags: list[dict[str, Any]], status: str, says: str
) -> None:
    ce = FakeCe(tags)
    found, detail, fix = tag_check(ce)
    assert (found, says in detail) == (status, True)
    assert ce.requests == [{"TagKeys": ["spawn:job-array-id"], "Type": "UserDefined"}]
    if status == "ok":
        assert fix == ""
    else:
        assert "update-cost-allocation-tags-status" in fix
        assert "Status=Active" in fix


def test_the_feature_is_priced_per_request_and_per_cache_write() -> None:
    running = [
        {"InstanceType": "c5.large", "Placement": {"AvailabilityZone": "us-east-1a"}},
        {"InstanceType": "c5.large", "Placement": {"AvailabilityZone": "us-east-1a"}},
        {"InstanceType": "c5.large", "Placement": {"AvailabilityZone": "us-east-1b"}},
    ]
    active = feature_usage(True, running)
    assert active == FeatureUsage(ce_requests=60, price_pairs=2)
    assert feature_usage(False, running).ce_requests == 30
    cost = feature_estimate(active)
    assert cost["cost_explorer"] == pytest.approx(0.60)
    writes = 2 * PRICE_REFRESHES_PER_MONTH
    assert cost["price_cache"] == pytest.approx(round(writes * 0.625 / 1e6, 4))
    assert cost["total"] == pytest.approx(cost["cost_explorer"] + cost["price_cache"], abs=1e-4)
    # Grows with distinct (type, zone) pairs, not with instances.
    assert feature_usage(True, running * 100).price_pairs == 2
