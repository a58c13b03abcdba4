"""Interruption and rebalance counters in the stats table, sharded.

Interruptions are counted into an all-time counter and per-hour buckets (which expire)
holding a count per minute, so "last hour" and "last 24 h" are a handful of key reads.
Every counter is split into `COUNTER_SHARDS` items, one per hash of the instance id, so
the transactions of a mass spot reclaim rarely collide (`TransactionConflict`); the
registry's per-instance marks say *whether* an instance was counted, and readers sum
the shards in one `BatchGetItem` per 100 keys.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import batch_get

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNTER_SHARDS = 16
HOUR_BUCKET_TTL = timedelta(days=3)


def counter_shard(instance_id: str, shards: int = COUNTER_SHARDS) -> int:
    """The counter shard an instance's counts go to (stable across processes)."""
    return zlib.crc32(instance_id.encode()) % shards


def total_key(shard: int) -> str:
    return f"interruptions#all#{shard:02d}"


def hour_key(at: datetime, shard: int) -> str:
    return f"interruptions#hour#{at:%Y-%m-%dT%H}#{shard:02d}"


def minute_attribute(at: datetime) -> str:
    """The attribute of an hour bucket counting the interruptions of one minute."""
    return f"m{at:%M}"


def array_key(array_id: str, shard: int) -> str:
    return f"interruptions#array#{array_id}#{shard:02d}"


def owner_interruptions_key(owner: str, shard: int) -> str:
    """A shard of the all-time interruption counter of one owner's instances."""
    return f"interruptions#owner#{owner}#{shard:02d}"


def rebalance_key(shard: int) -> str:
    return f"rebalance#all#{shard:02d}"


def increment(
    table: str, key: str, expires: datetime | None = None, minute: str | None = None
) -> dict[str, Any]:
    """A `TransactWriteItems` entry adding one to a counter, and to its `minute` count
    if given (safe inside a transaction whose other entry guarantees it runs once)."""
    names = {"#count": "count"}
    additions = ["#count :one"]
    if minute is not None:
        names["#minute"] = minute
        additions.append("#minute :one")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"key": {"S": key}},
        "UpdateExpression": "ADD " + ", ".join(additions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if expires is not None:
        update["UpdateExpression"] += " SET #expires = :expires"
        update["ExpressionAttributeNames"]["#expires"] = "expires_at"
        update["ExpressionAttributeValues"][":expires"] = {"N": str(int(expires.timestamp()))}
    return {"Update": update}


def interruption_increments(
    table: str,
    instance_id: str,
    at: datetime,
    array_id: str | None,
    owner: str | None = None,
    shards: int = COUNTER_SHARDS,
) -> list[dict[str, Any]]:
    """Every counter one interruption adds to, in the instance's shard."""
    shard = counter_shard(instance_id, shards)
    entries = [
        increment(table, total_key(shard)),
        increment(table, hour_key(at, shard), at + HOUR_BUCKET_TTL, minute_attribute(at)),
    ]
    if array_id:
        entries.append(increment(table, array_key(array_id, shard)))
    if owner:
        entries.append(increment(table, owner_interruptions_key(owner, shard)))
    return entries


def rebalance_increments(
    table: str, instance_id: str, shards: int = COUNTER_SHARDS
) -> list[dict[str, Any]]:
    return [increment(table, rebalance_key(counter_shard(instance_id, shards)))]


def window_keys(now: datetime, shards: int = COUNTER_SHARDS) -> list[str]:
    """Every shard of the hour buckets of the last 24 hours (including the current,
    partial one) and of the all-time counter."""
    hours = [hour_key(now - timedelta(hours=h), s) for h in range(24) for s in range(shards)]
    return [*hours, *(total_key(s) for s in range(shards))]


def totals_from(
    items: Mapping[str, Mapping[str, int]], now: datetime, shards: int = COUNTER_SHARDS
) -> dict[str, int]:
    """Interruption totals from the counter items (`key` → attributes): last hour (to
    the minute), last 24 h (to the hour) and all time."""
    last_hour = 0
    for m in range(60):
        at = now - timedelta(minutes=m)
        last_hour += sum(
            items.get(hour_key(at, s), {}).get(minute_attribute(at), 0) for s in range(shards)
        )
    last_day = sum(
        items.get(hour_key(now - timedelta(hours=h), s), {}).get("count", 0)
        for h in range(24)
        for s in range(shards)
    )
    total = sum(items.get(total_key(s), {}).get("count", 0) for s in range(shards))
    return {"last_hour": last_hour, "last_24h": last_day, "total": total}


class Counters:
    """The counter reads of `chalicelib.fleet.stats.Stats`."""

    dynamodb: DynamoDBClient
    table: str
    shards: int

    def counters(self, keys: Iterable[str]) -> dict[str, dict[str, int]]:
        """The number attributes of counter items by key (absent items are left out);
        ≤ 100 keys a call."""
        found: dict[str, dict[str, int]] = {}
        wanted = [{"key": {"S": k}} for k in dict.fromkeys(keys)]
        for item in batch_get(self.dynamodb, self.table, wanted):
            found[item["key"]["S"]] = {
                name: int(value["N"]) for name, value in item.items() if "N" in value
            }
        return found

    def _sum(self, keys: Iterable[str]) -> int:
        return sum(item.get("count", 0) for item in self.counters(keys).values())

    def interruption_totals(self, now: datetime) -> dict[str, int]:
        """Interruptions in the last hour, the last 24 h and in all (SPEC §7 `/fleet`)."""
        items = self.counters(window_keys(now, self.shards))
        return totals_from(items, now, self.shards)

    def array_interruptions(self, array_id: str) -> int:
        return self._sum(array_key(array_id, s) for s in range(self.shards))

    def arrays_interruptions(self, array_ids: Iterable[str]) -> dict[str, int]:
        """All-time interruptions of each array (absent arrays count 0): the shards of
        every array, 100 keys a BatchGetItem, so a page of arrays costs a few reads."""
        wanted = list(dict.fromkeys(array_ids))
        keys = [array_key(a, s) for a in wanted for s in range(self.shards)]
        items: dict[str, dict[str, int]] = {}
        for start in range(0, len(keys), 100):
            items |= self.counters(keys[start : start + 100])
        return {
            a: sum(items.get(array_key(a, s), {}).get("count", 0) for s in range(self.shards))
            for a in wanted
        }

    def owner_interruptions(self, owners: Iterable[str]) -> dict[str, int]:
        """All-time interruptions of each owner's instances (absent owners count 0)."""
        wanted = list(owners)
        items = self.counters(
            owner_interruptions_key(o, s) for o in wanted for s in range(self.shards)
        )
        return {
            o: sum(
                items.get(owner_interruptions_key(o, s), {}).get("count", 0)
                for s in range(self.shards)
            )
            for o in wanted
        }

    def rebalance_total(self) -> int:
        return self._sum(rebalance_key(s) for s in range(self.shards))
