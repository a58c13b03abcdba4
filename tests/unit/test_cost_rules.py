"""Billing rules, runs from unordered events, the accrual and the cost view (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cost.accrual import accrue, instance_cost
from chalicelib.cost.billing import (
    Segment,
    billed_seconds,
    integrate,
    run_usd,
    runs,
    volume_usd_per_hour,
)
from chalicelib.cost.prices import PriceBook
from chalicelib.cost.view import cost_view

H = 3_600_000
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
GP3 = {"gb_month": 0.08, "iops_month": 0.005, "throughput_month": 0.04}


def test_linux_runs_are_billed_per_second_with_a_minute_minimum() -> None:
    assert billed_seconds(12, "Linux/UNIX") == 60
    assert billed_seconds(61.5, "Windows") == 61.5
    assert billed_seconds(61, "SUSE Linux") == 3600  # billed per hour
    assert billed_seconds(3601, "SUSE Linux") == 7200


def test_runs_pair_starts_and_ends_whatever_their_order_and_repeats() -> None:
    starts, ends = [5 * H, 0, 5 * H], [2 * H, 2 * H + 30_000, 7 * H]
    assert runs(starts, ends) == [(0, 2 * H), (5 * H, 7 * H)]
    assert runs(list(reversed(starts)), list(reversed(ends))) == runs(starts, ends)
    # A lost stop: the run ends where the next begins; the last run is still open.
    assert runs([0, 3 * H, 8 * H], [4 * H]) == [(0, 3 * H), (3 * H, 4 * H), (8 * H, None)]


def test_a_price_change_during_a_run_splits_it() -> None:
    segments = [Segment(0, 1.0), Segment(H, 2.0)]
    assert integrate(segments, H // 2, 2 * H) == pytest.approx(0.5 + 2.0)
    # A closed run shorter than a minute is billed a minute at the price it ended on.
    assert run_usd(segments, H + 1000, H + 11_000, "Linux/UNIX", True) == pytest.approx(2.0 / 60)
    assert run_usd(segments, H + 1000, H + 11_000, "Linux/UNIX", False) == pytest.approx(
        2.0 * 10 / 3600
    )


def test_ebs_rates_count_what_gp3_and_io2_bill_beyond_storage() -> None:
    gp3 = {"type": "gp3", "size": 100, "iops": 6000, "throughput": 250}
    monthly = 100 * 0.08 + 3000 * 0.005 + 125 * 0.04
    assert volume_usd_per_hour(gp3, GP3) == pytest.approx(monthly / 730)
    io2 = {"type": "io2", "size": 10, "iops": 1000}
    assert volume_usd_per_hour(io2, {"gb_month": 0.125, "iops_month": 0.065}) == (
        pytest.approx((1.25 + 65) / 730)
    )
    assert volume_usd_per_hour({"type": "gp2", "size": "junk"}, {"gb_month": 0.1}) == 0


def row(**values: Any) -> dict[str, Any]:
    base = {
        "instance_id": "i-1",
        "managed": True,
        "array_id": "a-20261204-abcdef",
        "state": "terminated",
        "instance_type": "m5.large",
        "availability_zone": "us-east-1a",
        "lifecycle": "on-demand",
        "cost_starts": {NOW_MS - 3 * H},
        "cost_ends": {NOW_MS - 2 * H},
        "cost_terminations": {NOW_MS - H},
        "cost_volumes": [{"type": "gp3", "size": 730, "iops": 3000, "throughput": 125}],
    }
    return {**base, **values}


def test_ebs_costs_while_stopped_until_terminated() -> None:
    tally = instance_cost(row(), PriceBook("us-east-1"), NOW_MS)
    assert tally.on_demand == pytest.approx(0.096)
    # 730 GiB at 0.08 per GB-month is 0.08 an hour, for the 2 h from launch to termination.
    assert tally.storage == pytest.approx(0.16)
    assert tally.usd_per_hour == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"instance_type": "x9.mystery"}, "unpriced:unknown-instance-type"),
        ({"lifecycle": "spot", "availability_zone": None}, "unpriced:missing-zone"),
    ],
)
def test_an_unpriceable_instance_is_marked_and_the_rest_still_counted(
    changes: dict[str, Any], reason: str
) -> None:
    rows = [row(), row(instance_id="i-2", **changes)]
    accrual = accrue(rows, PriceBook("us-east-1"), NOW, None)
    figures = accrual.arrays["a-20261204-abcdef"]
    assert figures["unpriced"] == {reason: 1}
    assert reason in figures["price_source"]
    # The priced instance's hour and both instances' storage still count.
    assert figures["breakdown"]["compute"] == pytest.approx(0.096)
    assert figures["breakdown"]["storage"] == pytest.approx(0.32)


def test_running_instances_accrue_at_their_rate_and_count_in_the_fleet() -> None:
    running = row(state="running", cost_ends=set(), cost_terminations=set(), public_ipv4=1)
    accrual = accrue([running], PriceBook("us-east-1"), NOW, 50.0)
    figures = accrual.arrays["a-20261204-abcdef"]
    assert figures["usd_per_hour"] == pytest.approx(0.096 + 0.08 + 0.005)
    assert figures["usd"] == pytest.approx(3 * (0.096 + 0.08 + 0.005))
    assert figures["budget_usd"] == 50.0
    assert accrual.fleet["usd_per_hour"] == figures["usd_per_hour"]
    # The day started 12 h ago: today holds the whole 3 h.
    assert accrual.fleet["usd_today"] == pytest.approx(figures["usd"])
    assert accrual.fleet["usd_month_to_date"] == pytest.approx(figures["usd"])


def test_members_cost_limits_make_the_budget() -> None:
    rows = [row(cost_limit_usd="2.5"), row(instance_id="i-2", cost_limit_usd="1.5"), row()]
    figures = accrue(rows, PriceBook("us-east-1"), NOW, 99.0).arrays["a-20261204-abcdef"]
    assert figures["budget_usd"] == 4.0


def test_the_view_projects_to_the_eta_and_a_finished_array_reads_the_same() -> None:
    document = {"usd": 1.0, "usd_per_hour": 2.0, "as_of": "2026-12-04T11:59:00Z"}
    assert cost_view(document, 1800, False, NOW)["projected_usd"] == pytest.approx(
        1.0 + 2.0 * (60 + 1800) / 3600
    )
    assert cost_view(document, None, False, NOW)["projected_usd"] is None
    done = {**document, "usd_per_hour": 0.0}
    later = NOW + timedelta(hours=5)
    assert cost_view(done, None, True, NOW) == cost_view(done, None, True, later)
    assert cost_view(None, None, False, NOW)["price_source"] == "none"
