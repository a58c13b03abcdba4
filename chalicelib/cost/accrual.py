"""What each instance, array and the fleet has cost, from registry rows (pure but for
the price book it is handed).

The fleet tick already reads every registry row each minute; it hands them here, and
stores one cost document per array and the fleet's figures in its snapshot, so reads
stay one item per array. A run is priced at what AWS charged over it (spot: every price
change splits it), rounded as AWS bills it once it has ended; EBS volumes cost from the
first run until termination (stopped too); public IPv4 addresses cost while running.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.cost.billing import price_at, run_usd, runs, volume_usd_per_hour
from chalicelib.cost.prices import PriceBook, Quote

COST_LIMIT_TAG = "spawn:cost-limit"
DIGITS = 6


@dataclass
class Tally:
    """Sums over instances (USD; rates in USD per hour)."""

    spot: float = 0.0
    on_demand: float = 0.0
    on_demand_equivalent: float = 0.0
    storage: float = 0.0
    ipv4: float = 0.0
    usd_per_hour: float = 0.0
    budget: float = 0.0
    budgeted: int = 0
    instances: int = 0
    running: int = 0
    sources: set[str] = field(default_factory=set)
    unpriced: Counter[str] = field(default_factory=Counter)

    @property
    def compute(self) -> float:
        return self.spot + self.on_demand

    @property
    def usd(self) -> float:
        return self.compute + self.storage + self.ipv4

    def absorb(self, other: Tally) -> None:
        for name in (
            "spot",
            "on_demand",
            "on_demand_equivalent",
            "storage",
            "ipv4",
            "usd_per_hour",
            "budget",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.budgeted += other.budgeted
        self.instances += other.instances
        self.running += other.running
        self.sources |= other.sources
        self.unpriced += other.unpriced


def _ms_set(value: Any) -> set[int]:
    if not value:
        return set()
    try:
        return {int(v) for v in value}
    except (TypeError, ValueError):
        return set()


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


# Registry fields that price an instance; `cost_facts` holds them as first captured.
DRIVERS = (
    "managed",
    "array_id",
    "owner",
    "instance_type",
    "availability_zone",
    "lifecycle",
    "platform",
    "tenancy",
    "public_ipv4",
    "cost_limit_usd",
)


def priced_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with its price drivers filled from `cost_facts` where the registry has
    none (a `running` it refused as late still left them there)."""
    captured = row.get("cost_facts") or {}
    filled = dict(row)
    for key in DRIVERS:
        if filled.get(key) is None and captured.get(key) is not None:
            filled[key] = captured[key]
    return filled


def instance_cost(
    row: Mapping[str, Any],
    book: PriceBook,
    now_ms: int,
    window: tuple[int, int] | None = None,
) -> Tally:
    """One registry row's cost so far (or within `window`, [from, to) in ms; a window
    clips runs and leaves out the rounding to billed seconds)."""
    tally = Tally(instances=1)
    starts = _ms_set(row.get("cost_starts"))
    if row.get("state") == "running" and row.get("running_since_ms") is not None:
        starts |= {int(row["running_since_ms"])}
    ends = _ms_set(row.get("cost_ends"))
    terminated = min(_ms_set(row.get("cost_terminations")), default=None)
    if terminated is None and row.get("state") == "terminated" and row.get("last_event_ms"):
        terminated = int(row["last_event_ms"])
    if terminated is not None:
        ends |= {terminated}
        starts = {s for s in starts if s <= terminated}
    if not starts:
        return tally
    lo, hi = window if window is not None else (0, now_ms)
    if min(starts) >= hi or (terminated is not None and terminated <= lo):
        return tally  # nothing of it falls in the window
    platform = str(row.get("platform") or "Linux/UNIX")
    tenancy = str(row.get("tenancy") or "default")
    instance_type = row.get("instance_type")
    spot = row.get("lifecycle") == "spot"
    first = min(starts)
    on_demand = book.on_demand(instance_type, platform, tenancy)
    compute: Quote = (
        book.spot(instance_type, row.get("availability_zone"), platform, first)
        if spot
        else on_demand
    )
    ipv4_price, ipv4_source = book.public_ipv4()
    addresses = int(_float(row.get("public_ipv4")) or 0)
    for quote in {compute, on_demand}:
        if quote.priced:
            tally.sources |= {quote.source}
        else:
            tally.unpriced[quote.source] += 1
    open_run = False
    for start, end in runs(starts, ends):
        stop = now_ms if end is None else end
        open_run = open_run or end is None
        a, b = max(start, lo), min(stop, hi)
        if b <= a:
            continue
        closed = end is not None and window is None
        if compute.priced:
            usd = run_usd(compute.segments, a, b, platform, closed)
            if spot:
                tally.spot += usd
            else:
                tally.on_demand += usd
        if on_demand.priced:
            tally.on_demand_equivalent += run_usd(on_demand.segments, a, b, platform, closed)
        if addresses and ipv4_price is not None:
            tally.ipv4 += addresses * ipv4_price * (b - a) / 3_600_000
    if addresses and ipv4_price is not None:
        tally.sources |= {ipv4_source}
    if open_run:
        tally.running = 1
        if compute.priced:
            tally.usd_per_hour += price_at(compute.segments, now_ms)
        if addresses and ipv4_price is not None:
            tally.usd_per_hour += addresses * ipv4_price
    storage_rate = 0.0
    for volume in row.get("cost_volumes") or []:
        rates, source = book.ebs(volume.get("type"))
        if rates is None:
            tally.unpriced[source] += 1
            continue
        tally.sources |= {source}
        storage_rate += volume_usd_per_hour(volume, rates)
    if storage_rate:
        a, b = max(first, lo), min(terminated if terminated is not None else now_ms, hi)
        if b > a:
            tally.storage += storage_rate * (b - a) / 3_600_000
        if terminated is None:
            tally.usd_per_hour += storage_rate
    limit = _float(row.get("cost_limit_usd"))
    if limit is not None and limit > 0:
        tally.budget += limit
        tally.budgeted += 1
    return tally


def array_figures(tally: Tally, default_budget: float | None) -> dict[str, Any]:
    """The stored cost document of one array (without `as_of`, which the store adds
    when these figures change)."""
    budget = round(tally.budget, 6) if tally.budgeted else default_budget
    return {
        "usd": _round(tally.usd),
        "usd_per_hour": _round(tally.usd_per_hour),
        "budget_usd": budget,
        "by_lifecycle": {"spot": _round(tally.spot), "on_demand": _round(tally.on_demand)},
        "on_demand_equivalent_usd": _round(tally.on_demand_equivalent),
        "breakdown": {
            "compute": _round(tally.compute),
            "storage": _round(tally.storage),
            "ipv4": _round(tally.ipv4),
        },
        "price_source": price_source(tally),
        "unpriced": dict(sorted(tally.unpriced.items())),
        "instances": tally.instances,
        "running": tally.running,
    }


def price_source(tally: Tally) -> str:
    """Every source that priced part of the figure, joined by `+`, then any unpriced
    reasons; `none` when nothing ran yet."""
    parts = sorted(tally.sources) + sorted(tally.unpriced)
    return "+".join(parts) if parts else "none"


def _round(value: float) -> float:
    return round(value, DIGITS)


@dataclass(frozen=True)
class Accrual:
    """One tick's figures: per array, for the fleet, and per owner of instances."""

    arrays: dict[str, dict[str, Any]]
    fleet: dict[str, Any]
    owners: dict[str, dict[str, Any]]
    day_usd: dict[str, float]


def accrue(
    rows: Iterable[Mapping[str, Any]],
    book: PriceBook,
    now: datetime,
    default_budget: float | None,
    month_before: Mapping[str, float] | None = None,
) -> Accrual:
    """Figures for every array with managed instances, the fleet and each owner.

    `month_before` is this month's ledger (day `DD` → USD) from earlier ticks, so the
    month counts instances whose rows have expired since; today and yesterday are
    recomputed from the rows on every tick.
    """
    now_ms = int(now.timestamp() * 1000)
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_ms = int(day.timestamp() * 1000)
    yesterday_ms = int((day - timedelta(days=1)).timestamp() * 1000)
    month_ms = int(day.replace(day=1).timestamp() * 1000)
    by_array: dict[str, Tally] = defaultdict(Tally)
    fleet_rate = 0.0
    today = yesterday = 0.0
    owner_rate: dict[str, float] = defaultdict(float)
    owner_today: dict[str, float] = defaultdict(float)
    owner_month: dict[str, float] = defaultdict(float)
    for raw in rows:
        row = priced_row(raw)
        if not row.get("managed"):
            continue
        tally = instance_cost(row, book, now_ms)
        if row.get("array_id"):
            by_array[str(row["array_id"])].absorb(tally)
        in_day = instance_cost(row, book, now_ms, (day_ms, now_ms)).usd
        today += in_day
        if day.day > 1:
            yesterday += instance_cost(row, book, now_ms, (yesterday_ms, day_ms)).usd
        fleet_rate += tally.usd_per_hour
        if row.get("owner"):
            owner = str(row["owner"])
            owner_rate[owner] += tally.usd_per_hour
            owner_today[owner] += in_day
            owner_month[owner] += instance_cost(row, book, now_ms, (month_ms, now_ms)).usd
    ledger = dict(month_before or {})
    ledger[f"{day.day:02d}"] = _round(today)
    if day.day > 1:
        previous = f"{day.day - 1:02d}"
        ledger[previous] = max(ledger.get(previous, 0.0), _round(yesterday))
    month = sum(ledger.values())
    fleet = {
        "usd_per_hour": _round(fleet_rate),
        "usd_today": _round(today),
        "usd_month_to_date": _round(month),
    }
    owners = {
        owner: {
            "usd_per_hour": _round(owner_rate[owner]),
            "usd_today": _round(owner_today[owner]),
            # Owners keep no ledger of their own: their month is what the rows still
            # show (the registry keeps ended instances for 7 days).
            "usd_month_to_date": _round(owner_month[owner]),
        }
        for owner in owner_rate
    }
    arrays = {a: array_figures(t, default_budget) for a, t in by_array.items()}
    return Accrual(arrays, fleet, owners, ledger)
