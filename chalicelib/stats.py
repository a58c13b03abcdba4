"""Fleet counters and the fleet snapshot, in the stats table (`STATS_TABLE`).

Interruptions are counted into an all-time counter and per-hour buckets (which expire)
holding a count per minute, so "last hour" and "last 24 h" are a handful of key reads
instead of a scan of history.

Every counter is split into `COUNTER_SHARDS` items, and each interruption adds to the
items of the shard its instance id hashes to. A mass spot reclaim interrupts hundreds
of instances within seconds, and DynamoDB cancels a transaction that writes an item
another transaction in flight is writing (`TransactionConflict`): with one item per
counter, every concurrent count collides; with sixteen, two counts collide only when
their instances share a shard. The per-instance marks in the registry stay the source
of truth for *whether* an instance was counted; readers sum the shards, all of them
in one `BatchGetItem` per 100 keys.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNTER_SHARDS = 16
SNAPSHOT = "fleet#snapshot"
HOUR_BUCKET_TTL = timedelta(days=3)
BATCH_GET_MAX = 100


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


class Stats:
    """Reads and writes of the stats table.

    Args:
        dynamodb: a DynamoDB client.
        table: `STATS_TABLE`.
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str, shards: int = COUNTER_SHARDS) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.shards = shards

    def counters(self, keys: Iterable[str]) -> dict[str, dict[str, int]]:
        """The number attributes of counter items by key (absent items are left out);
        ≤ 100 keys a call."""
        found: dict[str, dict[str, int]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), BATCH_GET_MAX):
            chunk = wanted[start : start + BATCH_GET_MAX]
            request: dict[str, Any] = {self.table: {"Keys": [{"key": {"S": k}} for k in chunk]}}
            while request:
                response = self.dynamodb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    found[item["key"]["S"]] = {
                        name: int(value["N"]) for name, value in item.items() if "N" in value
                    }
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def _sum(self, keys: Iterable[str]) -> int:
        return sum(item.get("count", 0) for item in self.counters(keys).values())

    def interruption_totals(self, now: datetime) -> dict[str, int]:
        """Interruptions in the last hour, the last 24 h and in all (SPEC §7 `/fleet`)."""
        items = self.counters(window_keys(now, self.shards))
        return totals_from(items, now, self.shards)

    def array_interruptions(self, array_id: str) -> int:
        return self._sum(array_key(array_id, s) for s in range(self.shards))

    def rebalance_total(self) -> int:
        return self._sum(rebalance_key(s) for s in range(self.shards))

    def get_document(self, key: str) -> dict[str, Any] | None:
        """A JSON document stored with `put_document`, or None."""
        item = self.dynamodb.get_item(TableName=self.table, Key={"key": {"S": key}}).get("Item")
        if item is None:
            return None
        return json.loads(item["document"]["S"])  # type: ignore[no-any-return]

    def put_document(self, key: str, document: Mapping[str, Any]) -> None:
        """Store a JSON document (kept as one string: fractions stay plain floats)."""
        self.dynamodb.put_item(
            TableName=self.table,
            Item={"key": {"S": key}, "document": {"S": json.dumps(document, sort_keys=True)}},
        )

    def register_array(self, array_id: str, name: str | None, size: int | None) -> None:
        """Remember an array's name and declared size, from its instances' spawn tags."""
        item: dict[str, Any] = {"key": {"S": f"array#{array_id}"}}
        if name:
            item["name"] = {"S": name}
        if size is not None:
            item["size"] = {"N": str(size)}
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def array_info(self, array_id: str) -> tuple[str | None, int | None] | None:
        """(name, declared size) of an array seen on instances, or None if never seen."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"key": {"S": f"array#{array_id}"}}
        ).get("Item")
        if item is None:
            return None
        size = item.get("size", {}).get("N")
        return item.get("name", {}).get("S"), int(size) if size is not None else None
