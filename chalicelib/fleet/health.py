"""Fleet health: one snapshot per tick, its metrics, and the one fleet alarm they feed.

A composite alarm takes no wildcards and no percentage, so each tick counts running
managed instances and those failing a check, publishes `Spawn/Fleet UnhealthyPercent`
(watched by `spawn-fleet-unhealthy`), and stores the snapshot `GET /fleet` reads, plus
one per owner for isolation. Details: docs/architecture.md ("Fleet health without a
wildcard composite alarm") and docs/api.md.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.alarms.per_instance import ALARM_KINDS
from chalicelib.alerts.publish import Alert, AlertPublisher
from chalicelib.contract.catalog import COST
from chalicelib.core.observability import emit
from chalicelib.cost.store import CostTick
from chalicelib.fleet.capacity import CapacityLedger
from chalicelib.fleet.events import epoch_ms, iso
from chalicelib.fleet.registry import Registry
from chalicelib.fleet.snapshots import SNAPSHOT, SNAPSHOT_OWNERS, owner_snapshot_key
from chalicelib.fleet.stats import Stats

NAMESPACE = "Spawn/Fleet"
EMPTY_TOTALS = {"last_hour": 0, "last_24h": 0, "total": 0}
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NO_COST = {"usd_per_hour": 0.0, "usd_today": 0.0, "usd_month_to_date": 0.0}


def is_unhealthy(row: Mapping[str, Any]) -> bool:
    """A status or system check in ALARM since the instance last started running.

    Alarms are recreated (in INSUFFICIENT_DATA) each time an instance runs, so a check
    state older than the current run says nothing about it.
    """
    running_since = int(row.get("last_event_ms", 0))
    return any(
        row.get(f"check_{kind.suffix}_state") == "ALARM"
        and int(row.get(f"check_{kind.suffix}_ms", 0)) >= running_since
        for kind in ALARM_KINDS
    )


def snapshot(
    rows: Iterable[Mapping[str, Any]], interruptions: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    """The `GET /fleet` document from registry rows and interruption totals.

    States count every managed instance not yet gone; type, zone and lifecycle count
    the running ones (the active fleet), as do the health figures.
    """
    live = [r for r in rows if r.get("managed") and not r.get("gone") and r.get("state")]
    running = [r for r in live if r["state"] == "running"]
    unhealthy = sorted(str(r["instance_id"]) for r in running if is_unhealthy(r))
    percent = round(100.0 * len(unhealthy) / len(running), 2) if running else 0.0
    return {
        "instances": {
            "total": len(live),
            "running": len(running),
            "by_state": dict(sorted(Counter(str(r["state"]) for r in live).items())),
            "by_type": _count(running, "instance_type"),
            "by_availability_zone": _count(running, "availability_zone"),
            "by_lifecycle": _count(running, "lifecycle"),
        },
        "unhealthy": {"count": len(unhealthy), "percent": percent, "instance_ids": unhealthy},
        "interruptions": dict(interruptions),
        "active_arrays": sorted({str(r["array_id"]) for r in running if r.get("array_id")}),
        "updated_at": iso(now),
    }


def owner_snapshots(
    rows: Iterable[Mapping[str, Any]], totals: Mapping[str, int], now: datetime
) -> dict[str, dict[str, Any]]:
    """One `GET /fleet` document per owner named on the rows, over that owner's rows.

    `totals` is each owner's all-time interruption count; the hour and 24 h figures
    count the owner's instances whose latest interruption (`interrupted_ms`) falls in
    the window.
    """
    by_owner: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("owner"):
            by_owner[str(row["owner"])].append(row)
    now_ms = epoch_ms(now)
    documents = {}
    for owner, owned in sorted(by_owner.items()):
        ages = [now_ms - int(r["interrupted_ms"]) for r in owned if r.get("interrupted_ms")]
        interruptions = {
            "last_hour": sum(1 for age in ages if age < HOUR_MS),
            "last_24h": sum(1 for age in ages if age < DAY_MS),
            "total": totals.get(owner, 0),
        }
        documents[owner] = snapshot(owned, interruptions, now)
    return documents


def fleet_cost_figures(document: Mapping[str, Any]) -> dict[str, tuple[MetricUnit, float]]:
    """`Spawn/Cost FleetCostRateUSDPerHour` from the snapshot's `cost` (SPEC §14); empty
    while the snapshot has none or its rate is not a number."""
    cost = document.get("cost")
    rate = cost.get("usd_per_hour") if isinstance(cost, Mapping) else None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        return {}
    return {"FleetCostRateUSDPerHour": (MetricUnit.NoUnit, round(float(rate), 6))}


def _count(rows: list[Mapping[str, Any]], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(r.get(key) or "unknown") for r in rows).items()))


def empty_snapshot() -> dict[str, Any]:
    """What `GET /fleet` answers before the first tick."""
    document = snapshot([], EMPTY_TOTALS, datetime.now(UTC))
    document["updated_at"] = None
    document["cost"] = dict(NO_COST)
    return document


@dataclass
class FleetHealth:
    """The fleet tick.

    Args:
        registry: the instances table.
        stats: the stats table (interruption totals, the snapshot).
        alerts: sends `fleet_unhealthy` when the threshold is crossed.
        threshold: `UNHEALTHY_PERCENT_THRESHOLD`.
        costs: prices the rows and stores each array's cost; its fleet figures go in
            the snapshot as `cost` (optional: without it, no `cost`).
    """

    registry: Registry
    stats: Stats
    alerts: AlertPublisher
    threshold: float
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    capacity: CapacityLedger | None = None
    costs: CostTick | None = None

    def tick(self) -> dict[str, Any]:
        now = self.clock()
        rows = self.registry.all()
        if self.capacity is not None:  # live runs' instance-hours, bounded per tick
            self.capacity.accrue_due(rows, now)
        document = snapshot(rows, self.stats.interruption_totals(now), now)
        owner_costs: dict[str, dict[str, Any]] = {}
        if self.costs is not None:
            accrual = self.costs.run(rows, now)
            document["cost"] = accrual.fleet
            owner_costs = accrual.owners
        running = document["instances"]["running"]
        unhealthy = document["unhealthy"]
        emit(
            NAMESPACE,
            {
                "ActiveInstances": (MetricUnit.Count, running),
                "UnhealthyInstances": (MetricUnit.Count, unhealthy["count"]),
                "UnhealthyPercent": (MetricUnit.Percent, unhealthy["percent"]),
                "ActiveArrays": (MetricUnit.Count, len(document["active_arrays"])),
            },
        )
        previous = self.stats.get_document(SNAPSHOT) or {}
        over = unhealthy["percent"] > self.threshold
        document["unhealthy"]["alerted"] = bool(
            over and previous.get("unhealthy", {}).get("alerted")
        )
        if over and not document["unhealthy"]["alerted"]:
            self.alerts.publish(
                Alert(
                    event_type="fleet_unhealthy",
                    severity="critical",
                    subject=(
                        f"Fleet unhealthy: {unhealthy['count']} of {running} instances "
                        f"({unhealthy['percent']:g} %) fail a status check"
                    ),
                    details={"threshold_percent": self.threshold, **unhealthy},
                    time=now,
                )
            )
            document["unhealthy"]["alerted"] = True
        emit(COST, fleet_cost_figures(document))
        self.stats.put_document(SNAPSHOT, document)
        self.store_owner_snapshots(rows, now, owner_costs if self.costs is not None else None)
        return document

    def store_owner_snapshots(
        self,
        rows: list[dict[str, Any]],
        now: datetime,
        costs: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Store each owner's snapshot and remove those of owners no row names any more."""
        owners = sorted({str(r["owner"]) for r in rows if r.get("owner")})
        totals = self.stats.owner_interruptions(owners)
        documents = owner_snapshots(rows, totals, now)
        if costs is not None:
            for owner, document in documents.items():
                document["cost"] = costs.get(owner) or dict(NO_COST)
        listed = self.stats.get_document(SNAPSHOT_OWNERS) or {}
        vanished = set(listed.get("owners", [])) - set(owners)
        self.stats.write_documents(
            {owner_snapshot_key(o): d for o, d in documents.items()},
            deleted=sorted(owner_snapshot_key(o) for o in vanished),
        )
        # Written last: if anything above fails, the next tick still knows whom to remove.
        if listed.get("owners") != owners:
            self.stats.put_document(SNAPSHOT_OWNERS, {"owners": owners})
