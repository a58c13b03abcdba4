"""An independent billing oracle, written from AWS's billing pages, never from the product.

It must not import `chalicelib.cost`: it prices a *true* history (what really ran),
while the product prices what its events and its reconciler told it. The rules:

- EC2 (aws.amazon.com/ec2/pricing/on-demand, "Per-second billing"; the Spot user guide,
  "Pricing and savings"): Linux runs are billed per second, at least 60 s per run;
  a run is billed from `running` until stopping/shutting-down; a spot run at the spot
  price in force each second (prices change during a run).
- EBS (aws.amazon.com/ebs/pricing): per GB-month, prorated, from launch until the
  volume is deleted (with the instance, here), whether or not the instance runs; gp3
  includes 3,000 IOPS and 125 MiB/s. A month is 730 hours on that page.
- Public IPv4 (aws.amazon.com/vpc/pricing, "Public IPv4 addresses"): per address-hour
  while in use (an auto-assigned address is released when the instance stops).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class TrueInstance:
    """What really happened to one instance (times in epoch seconds)."""

    runs: list[tuple[float, float]]  # (running at, stopping at) each
    terminated_at: float
    spot: bool
    on_demand_per_hour: float
    # (since, USD per hour) for spot, sorted; the first is in force before the runs.
    spot_prices: Sequence[tuple[float, float]] = ()
    volume_gib: float = 0.0
    gb_month: float = 0.0
    public_ipv4: int = 0
    ipv4_per_hour: float = 0.0
    launched_at: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def _spot_price(prices: Sequence[tuple[float, float]], at: float) -> float:
    price = prices[0][1]
    for since, value in prices:
        if since <= at:
            price = value
    return price


def compute_bill(instance: TrueInstance, on_demand: bool = False) -> float:
    """USD for the instance's runs, second by second over the price's change points."""
    total = 0.0
    for start, end in instance.runs:
        seconds = end - start
        if on_demand or not instance.spot:
            billed = max(60.0, seconds)
            total += instance.on_demand_per_hour * billed / 3600
            continue
        # Walk the run through each price change inside it.
        points = sorted({start, end, *(t for t, _ in instance.spot_prices if start < t < end)})
        for a, b in itertools.pairwise(points):
            total += _spot_price(instance.spot_prices, a) * (b - a) / 3600
        if seconds < 60:
            total += _spot_price(instance.spot_prices, end) * (60 - seconds) / 3600
    return total


def storage_bill(instance: TrueInstance) -> float:
    hours = (instance.terminated_at - instance.launched_at) / 3600
    return instance.volume_gib * instance.gb_month / 730 * hours


def ipv4_bill(instance: TrueInstance) -> float:
    hours = sum(end - start for start, end in instance.runs) / 3600
    return instance.public_ipv4 * instance.ipv4_per_hour * hours


def bill(instance: TrueInstance) -> float:
    return compute_bill(instance) + storage_bill(instance) + ipv4_bill(instance)
