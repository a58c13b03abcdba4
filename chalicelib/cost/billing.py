"""AWS's billing rules, as pure functions over plain numbers (no I/O).

Each rule cites the AWS page it comes from. Times are epoch milliseconds; prices are
USD per hour (instances, public IPv4) or per month (EBS), as AWS publishes them.

    >>> billed_seconds(12.0, "Linux/UNIX")
    60.0
    >>> runs([1_000, 500_000], [200_000, 900_000])
    [(1000, 200000), (500000, 900000)]
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# https://aws.amazon.com/ec2/pricing/on-demand/ ("Per-second billing"): Linux, Windows
# (with or without SQL Server), RHEL and Ubuntu Pro are billed per second with a
# one-minute minimum; every other operating system per full hour. The same rule holds
# for spot (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instances.html,
# "Pricing and savings").
PER_SECOND_PLATFORMS = frozenset(
    {
        "Linux/UNIX",
        "Windows",
        "Windows with SQL Server Enterprise",
        "Windows with SQL Server Standard",
        "Windows with SQL Server Web",
        "Red Hat Enterprise Linux",
        "Red Hat Enterprise Linux with HA",
        "Ubuntu Pro",
    }
)
MINIMUM_SECONDS = 60.0
HOUR_SECONDS = 3600.0
# EBS prices are per GB-month, prorated "by the second" over the month's hours
# (https://aws.amazon.com/ebs/pricing/, "Pricing examples" divide by 730 hours a month);
# the 730-hour month is that page's, and is an approximation of each calendar month.
MONTH_HOURS = 730.0
# States at which an instance stops being billed: https://docs.aws.amazon.com/AWSEC2/
# latest/UserGuide/ec2-instance-lifecycle.html (table "Instance states": pending,
# stopping (unless hibernating), stopped, shutting-down and terminated are not billed).
END_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
# gp3 includes 3,000 IOPS and 125 MiB/s in the storage price; more is billed per
# provisioned IOPS-month and MiB/s-month (https://aws.amazon.com/ebs/pricing/).
GP3_FREE_IOPS = 3000
GP3_FREE_THROUGHPUT = 125
# io1 and io2 bill every provisioned IOPS per month (same page; io2's tiers above
# 32,000 IOPS are cheaper, taken here at the first tier's price).
IOPS_BILLED_TYPES = frozenset({"io1", "io2"})


def billed_seconds(seconds: float, platform: str | None) -> float:
    """The seconds AWS bills for one run of `seconds` on `platform`: per second with a
    60 s minimum, or whole hours for the platforms billed per hour."""
    seconds = max(0.0, seconds)
    if (platform or "Linux/UNIX") in PER_SECOND_PLATFORMS:
        return max(MINIMUM_SECONDS, seconds)
    return max(1.0, math.ceil(seconds / HOUR_SECONDS)) * HOUR_SECONDS


def runs(starts: Iterable[int], ends: Iterable[int]) -> list[tuple[int, int | None]]:
    """Billable runs from the times an instance was seen running (`starts`) and the
    times it was seen stopping, stopped, shutting down or terminated (`ends`).

    The result does not depend on the order the times arrived in, nor on repeats (both
    are sets). Each run starts at a start and ends at the first end at or after it and
    before the next start; with none (an end event lost) it ends at the next start; the
    last run is open (None) unless an end follows it.
    """
    starts_sorted = sorted(set(starts))
    ends_sorted = sorted(set(ends))
    found: list[tuple[int, int | None]] = []
    for k, start in enumerate(starts_sorted):
        following = starts_sorted[k + 1] if k + 1 < len(starts_sorted) else None
        i = bisect_right(ends_sorted, start - 1)
        end = ends_sorted[i] if i < len(ends_sorted) else None
        if following is not None and (end is None or end >= following):
            end = following
        found.append((start, end))
    return found


@dataclass(frozen=True)
class Segment:
    """A price in force from `since_ms` on (USD per hour)."""

    since_ms: int
    usd_per_hour: float


def price_at(segments: Sequence[Segment], at_ms: int) -> float:
    """The price in force at `at_ms` (the first known one before the history starts)."""
    times = [s.since_ms for s in segments]
    i = bisect_right(times, at_ms) - 1
    return segments[max(0, i)].usd_per_hour


def integrate(segments: Sequence[Segment], start_ms: int, end_ms: int) -> float:
    """USD for running from `start_ms` to `end_ms` at the prices in force: a price
    change during the run splits it."""
    if end_ms <= start_ms or not segments:
        return 0.0
    total = 0.0
    cursor = start_ms
    for k, segment in enumerate(segments):
        until = segments[k + 1].since_ms if k + 1 < len(segments) else end_ms
        lo, hi = max(cursor, segment.since_ms if k else start_ms), min(until, end_ms)
        if hi > lo:
            total += segment.usd_per_hour * (hi - lo) / 3_600_000
            cursor = hi
    return total


def run_usd(
    segments: Sequence[Segment], start_ms: int, end_ms: int, platform: str | None, closed: bool
) -> float:
    """One run's compute cost. A closed run is rounded up as AWS bills it (60 s minimum,
    or whole hours) at the price in force when it ended; an open run counts its seconds
    so far."""
    usd = integrate(segments, start_ms, end_ms)
    if closed:
        seconds = (end_ms - start_ms) / 1000
        extra = billed_seconds(seconds, platform) - max(0.0, seconds)
        usd += price_at(segments, end_ms) * extra / HOUR_SECONDS
    return usd


def volume_usd_per_hour(volume: Mapping[str, object], rates: Mapping[str, float]) -> float:
    """An EBS volume's cost per hour: GB-months, plus gp3's IOPS and throughput above
    what is included, plus io1/io2's provisioned IOPS. `rates` are per month:
    `gb_month`, `iops_month`, `throughput_month` (MiB/s-month)."""
    size = _number(volume.get("size"))
    iops = _number(volume.get("iops"))
    throughput = _number(volume.get("throughput"))
    kind = str(volume.get("type") or "")
    monthly = size * rates.get("gb_month", 0.0)
    if kind == "gp3":
        monthly += max(0.0, iops - GP3_FREE_IOPS) * rates.get("iops_month", 0.0)
        monthly += max(0.0, throughput - GP3_FREE_THROUGHPUT) * rates.get("throughput_month", 0.0)
    elif kind in IOPS_BILLED_TYPES:
        monthly += iops * rates.get("iops_month", 0.0)
    return monthly / MONTH_HOURS


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0
