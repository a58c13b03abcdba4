"""Capacity history by (instance type, zone) and UTC day (SPEC §15 `GET /capacity`).

Stats-table items `capacity#{day}#{type}#{zone}` hold `instance_seconds`,
`interruptions` and the launch-failure counts `lf_{code}`; `capacity-pairs#{day}` lists
the pairs seen that day. All are `ADD`ed, expire after 9 days, and a read costs 7 pair
reads plus one `BatchGetItem` per 100 pairs: never a Scan. Instance time is accrued
exactly once: a mark on the instance's registry row (`capacity_ms`, the end of the time
counted for its run) moves with the counts in one transaction, so duplicates, retries
and a late stop (which takes back what a periodic accrual counted) leave exact sums.
Details: docs/capacity.md.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import batch_get, transact_conflicts_retried
from chalicelib.fleet.events import epoch_ms
from chalicelib.fleet.registry import Registry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

WINDOW_DAYS = 7
TTL_DAYS = 9
DAY_MS = 86_400_000
# Live instances' time is accrued by the fleet tick once it is this old, a bounded
# number of instances per tick; an ended run is accrued when its end is recorded.
ACCRUE_EVERY_MS = 3_600_000
ACCRUE_MAX_PER_TICK = 200
ENDED_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
LAUNCH_FAILURE_PREFIX = "lf_"


def day_key(day: date, instance_type: str, zone: str) -> str:
    """The item of one (type, zone) on one UTC day (the key format shared with the
    launch-failure counts)."""
    return f"capacity#{day:%Y-%m-%d}#{instance_type}#{zone}"


def pairs_key(day: date) -> str:
    """The item listing the `"{type}#{zone}"` pairs seen on one UTC day."""
    return f"capacity-pairs#{day:%Y-%m-%d}"


def expires_at(day: date) -> int:
    """The TTL (`expires_at`, epoch seconds) of a day's items: 9 days after it began."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int((start + timedelta(days=TTL_DAYS)).timestamp())


def split_by_day(start_ms: int, end_ms: int) -> dict[date, int]:
    """Whole seconds between two instants per UTC day, negative when `end_ms` is
    before `start_ms` (a correction).

    >>> split_by_day(epoch_ms(datetime(2026, 1, 1, 23, tzinfo=UTC)),
    ...              epoch_ms(datetime(2026, 1, 2, 1, tzinfo=UTC)))
    {datetime.date(2026, 1, 1): 3600, datetime.date(2026, 1, 2): 3600}
    """
    sign = 1 if end_ms >= start_ms else -1
    low, high = sorted((start_ms, end_ms))
    seconds: dict[date, int] = {}
    while low < high:
        day = datetime.fromtimestamp(low / 1000, UTC).date()
        boundary = (low // DAY_MS + 1) * DAY_MS
        upto = min(high, boundary)
        amount = upto // 1000 - low // 1000
        if amount:
            seconds[day] = seconds.get(day, 0) + sign * amount
        low = upto
    return seconds


def region_of_zone(zone: str, region: str) -> bool:
    """Whether availability zone (or Local / Wavelength zone) `zone` is in `region`."""
    return zone[:-1] == region or zone.startswith(region + "-")


@dataclass(frozen=True)
class Accrual:
    """Time of one instance's run still to count: from `start_ms` to `end_ms` (before
    it when a periodic accrual counted past the recorded end), with the mark it
    replaces (`seen`, None when absent) and the run it belongs to (`since`). `final`:
    the run has ended, and nothing more of it will count."""

    instance_id: str
    instance_type: str
    zone: str
    since: int
    seen: int | None
    start_ms: int
    end_ms: int
    final: bool = False


def accrual(row: Mapping[str, Any], now_ms: int) -> Accrual | None:
    """What a registry row has not yet counted, or None (unmanaged, no run, no type or
    zone, nothing new). A running instance counts to `now_ms`, an ended one to the
    recorded end of its run: the first ended state recorded (`stopping` before
    `stopped`), after which the run is final."""
    since = row.get("running_since_ms")
    instance_type, zone = row.get("instance_type"), row.get("availability_zone")
    if not row.get("managed") or since is None or not instance_type or not zone:
        return None
    since = int(since)
    state = row.get("state")
    if state == "running":
        end = now_ms // 1000 * 1000
    elif state in ENDED_STATES and int(row.get("last_event_ms", 0)) >= since:
        end = int(row["last_event_ms"])
    else:
        return None
    seen = None if row.get("capacity_ms") is None else int(row["capacity_ms"])
    this_run = seen is not None and seen >= since
    final = state != "running"
    if final and this_run and row.get("capacity_final"):
        return None
    start = seen if seen is not None and this_run else since
    if state == "running" and end <= start:
        return None
    return Accrual(
        str(row["instance_id"]), str(instance_type), str(zone), since, seen, start, end, final
    )


def _add(
    table: str, key: str, day: date, expression: str, values: dict[str, Any]
) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"key": {"S": key}},
            "UpdateExpression": f"ADD {expression} SET #expires = :expires",
            "ExpressionAttributeNames": _names(expression),
            "ExpressionAttributeValues": {**values, ":expires": {"N": str(expires_at(day))}},
        }
    }


def _names(expression: str) -> dict[str, str]:
    known = {
        "#seconds": "instance_seconds",
        "#interruptions": "interruptions",
        "#pairs": "pairs",
    }
    names = {token: name for token, name in known.items() if token in expression}
    names["#expires"] = "expires_at"
    return names


def day_updates(
    table: str, instance_type: str, zone: str, day: date, seconds: int = 0, interruptions: int = 0
) -> list[dict[str, Any]]:
    """The transaction entries adding to one day's (type, zone) item and pair list."""
    additions, values = [], {}
    if seconds:
        additions.append("#seconds :seconds")
        values[":seconds"] = {"N": str(seconds)}
    if interruptions:
        additions.append("#interruptions :interruptions")
        values[":interruptions"] = {"N": str(interruptions)}
    if not additions:
        return []
    pair = {":pair": {"SS": [f"{instance_type}#{zone}"]}}
    return [
        _add(table, day_key(day, instance_type, zone), day, ", ".join(additions), values),
        _add(table, pairs_key(day), day, "#pairs :pair", pair),
    ]


@dataclass
class CapacityLedger:
    """Writes and reads the capacity items.

    Args:
        dynamodb: a DynamoDB client.
        table: the stats table (`STATS_TABLE`).
        registry: the instances table, which holds each instance's marks.
        clock / sleep: now and how to wait (injectable for tests).
    """

    dynamodb: DynamoDBClient
    table: str
    registry: Registry
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep

    # --- writes -------------------------------------------------------------------

    def on_change(self, instance_id: str, state: str) -> None:
        """After the lifecycle recorded a change: count an ended run's time and its
        interruption (both idempotent, so a redelivered change repeats nothing)."""
        if state not in ENDED_STATES:
            return
        try:
            row = self.registry.get(instance_id)
            if row is not None:
                self.accrue(row)
                self.count_interruption(row)
        except Exception:
            # Never holds up the alarms: the fleet tick counts what is left.
            logger.exception(
                "capacity accrual failed; the fleet tick retries it",
                extra={"instance_id": instance_id},
            )

    def accrue(self, row: Mapping[str, Any], attempts: int = 3) -> bool:
        """Count what `row`'s run has not counted yet; re-reads the row when another
        writer moved the mark first. Returns whether this call wrote."""
        for _ in range(attempts):
            due = accrual(row, epoch_ms(self.clock()))
            if due is None:
                return False
            if self._transact(self._accrual_entries(due)):
                return True
            fresh = self.registry.get(due.instance_id)
            if fresh is None:
                return False
            row = fresh
        logger.warning(
            "capacity accrual kept conflicting", extra={"instance_id": row.get("instance_id")}
        )
        return False

    def _accrual_entries(self, due: Accrual) -> list[dict[str, Any]]:
        if due.seen is None:
            condition = "#running_since_ms = :since AND attribute_not_exists(#capacity_ms)"
            values: dict[str, Any] = {"since": due.since}
        else:
            condition = "#running_since_ms = :since AND #capacity_ms = :seen"
            values = {"since": due.since, "seen": due.seen}
        mark = self.registry.update_request(
            due.instance_id,
            {"capacity_ms": due.end_ms, "capacity_final": due.final},
            condition,
            values,
        )
        # Days that expired from the window are not written (a long run's start).
        oldest = self.clock().date() - timedelta(days=TTL_DAYS - 1)
        entries: list[dict[str, Any]] = [{"Update": mark}]
        for day, seconds in sorted(split_by_day(due.start_ms, due.end_ms).items()):
            if day >= oldest:
                entries += day_updates(self.table, due.instance_type, due.zone, day, seconds)
        return entries

    def count_interruption(self, row: Mapping[str, Any]) -> bool:
        """Add the instance's last counted interruption (`interrupted_ms`, marked by
        the exactly-once interruption count) to its (type, zone) day, once: its own
        mark `capacity_interrupted_ms` moves in the same transaction."""
        interrupted = row.get("interrupted_ms")
        instance_type, zone = row.get("instance_type"), row.get("availability_zone")
        if not row.get("managed") or interrupted is None:
            return False
        if row.get("capacity_interrupted_ms") == interrupted:
            return False
        if not instance_type or not zone:
            logger.info(
                "interruption not in capacity yet: type or zone unknown",
                extra={"instance_id": row.get("instance_id")},
            )
            return False
        at = int(interrupted)
        day = datetime.fromtimestamp(at / 1000, UTC).date()
        if day < self.clock().date() - timedelta(days=TTL_DAYS - 1):
            return False
        mark = self.registry.update_request(
            str(row["instance_id"]),
            {"capacity_interrupted_ms": at},
            "#interrupted_ms = :at AND (attribute_not_exists(#capacity_interrupted_ms)"
            " OR #capacity_interrupted_ms <> :at)",
            {"at": at},
        )
        updates = day_updates(self.table, str(instance_type), str(zone), day, interruptions=1)
        return self._transact([{"Update": mark}, *updates])

    def accrue_due(self, rows: Iterable[Mapping[str, Any]], now: datetime) -> int:
        """The fleet tick's share: live runs not counted for an hour, and ended runs
        whose end was not counted (a failed write), at most `ACCRUE_MAX_PER_TICK`,
        oldest first. Returns how many were written; a failure is logged, not raised."""
        now_ms = epoch_ms(now)
        due: list[tuple[int, Mapping[str, Any]]] = []
        for row in rows:
            pending = accrual(row, now_ms)
            late = _interruption_uncounted(row, now_ms)
            if pending is None and not late:
                continue
            counted_to = pending.start_ms if pending is not None else 0
            if late or row.get("state") != "running" or now_ms - counted_to >= ACCRUE_EVERY_MS:
                due.append((counted_to, row))
        written = 0
        for _, row in sorted(due, key=lambda d: d[0])[:ACCRUE_MAX_PER_TICK]:
            try:
                written += self.accrue(row)
                self.count_interruption(row)
            except Exception:
                logger.exception(
                    "capacity accrual failed", extra={"instance_id": row.get("instance_id")}
                )
        return written

    def _transact(self, entries: list[dict[str, Any]]) -> bool:
        """Run a transaction; False when its first entry's condition failed. Conflicts
        with other writers of the same (type, zone) item are retried, jittered."""
        return transact_conflicts_retried(self.dynamodb, entries, self.sleep)

    # --- reads --------------------------------------------------------------------

    def view(
        self, now: datetime, instance_type: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """The `GET /capacity` entries over the last 7 UTC days (today included)."""
        days = [now.date() - timedelta(days=d) for d in range(WINDOW_DAYS)]
        lists = batch_get(self.dynamodb, self.table, [{"key": {"S": pairs_key(d)}} for d in days])
        by_key = {item["key"]["S"]: item for item in lists}
        keys: list[tuple[str, str]] = []
        for day in days:
            for pair in by_key.get(pairs_key(day), {}).get("pairs", {}).get("SS", []):
                type_, _, zone = pair.partition("#")
                if instance_type and type_ != instance_type:
                    continue
                if region and not region_of_zone(zone, region):
                    continue
                keys.append((pair, day_key(day, type_, zone)))
        items = batch_get(self.dynamodb, self.table, [{"key": {"S": k}} for _, k in keys])
        found = {item["key"]["S"]: item for item in items}
        totals: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"seconds": 0, "interruptions": 0, "failures": defaultdict(int)}
        )
        for pair, key in keys:
            item = found.get(key, {})
            total = totals[pair]
            for name, value in item.items():
                if "N" not in value:
                    continue
                if name == "instance_seconds":
                    total["seconds"] += float(value["N"])
                elif name == "interruptions":
                    total["interruptions"] += int(float(value["N"]))
                elif name.startswith(LAUNCH_FAILURE_PREFIX):
                    total["failures"][name[len(LAUNCH_FAILURE_PREFIX) :]] += int(float(value["N"]))
        return [entry(pair, totals[pair]) for pair in sorted(totals)]


def _interruption_uncounted(row: Mapping[str, Any], now_ms: int) -> bool:
    interrupted = row.get("interrupted_ms")
    return (
        bool(row.get("managed") and row.get("instance_type") and row.get("availability_zone"))
        and interrupted is not None
        and interrupted != row.get("capacity_interrupted_ms")
        and int(interrupted) >= now_ms - (TTL_DAYS - 1) * DAY_MS
    )


def entry(pair: str, total: Mapping[str, Any]) -> dict[str, Any]:
    """One `/capacity` entry from a pair's sums over the window."""
    instance_type, _, zone = pair.partition("#")
    hours = max(0.0, total["seconds"]) / 3600
    interruptions = int(total["interruptions"])
    return {
        "instance_type": instance_type,
        "availability_zone": zone,
        "instance_hours": round(hours, 3),
        "interruptions": interruptions,
        "interruptions_per_100h": round(100 * interruptions / hours, 3) if hours > 0 else None,
        "launch_failures": dict(sorted((c, n) for c, n in total["failures"].items() if n)),
    }
