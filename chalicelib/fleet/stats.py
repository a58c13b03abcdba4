"""Fleet counters, fleet snapshots and array registrations, in the stats table
(`STATS_TABLE`).

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

Arrays are registered from their instances' spawn tags (name, declared size, owner).
A sparse global secondary index, `owner-arrays` (hash `owner`, range `array_id`),
holds only the registrations that carry an owner, so one owner's arrays are a Query
that reads just their page, whatever the number of arrays (per-user isolation,
`chalicelib.core.access`). The fleet snapshot is stored once for the fleet and once per
owner.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import batch_get, chunked

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.core.settings import Settings
    from chalicelib.fleet.registry import InstanceFacts

logger = logging.getLogger(__name__)

COUNTER_SHARDS = 16
SNAPSHOT = "fleet#snapshot"
# The owners that have a snapshot of their own, so a vanished owner's can be removed.
SNAPSHOT_OWNERS = "fleet#snapshot-owners"
OWNER_INDEX = "owner-arrays"
# DynamoDB's limits per BatchGetItem and BatchWriteItem request.
BATCH_WRITE_MAX = 25
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


def owner_snapshot_key(owner: str) -> str:
    """Where the `GET /fleet` document of one owner's instances is stored."""
    return f"{SNAPSHOT}#owner#{owner}"


def registration_key(array_id: str) -> str:
    return f"array#{array_id}"


@dataclass(frozen=True)
class ArrayRecord:
    """An array as registered from its instances' spawn tags."""

    array_id: str
    name: str | None
    size: int | None
    owner: str | None

    @property
    def info(self) -> tuple[str | None, int | None]:
        """(name, declared size), as `progress_view` takes them."""
        return self.name, self.size


def _record(item: Mapping[str, Any], array_id: str) -> ArrayRecord:
    size = item.get("size", {}).get("N")
    return ArrayRecord(
        array_id=array_id,
        name=item.get("name", {}).get("S"),
        size=int(size) if size is not None else None,
        owner=item.get("owner", {}).get("S"),
    )


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

    def write_documents(
        self, documents: Mapping[str, Mapping[str, Any]], deleted: Iterable[str] = ()
    ) -> None:
        """Store many documents and delete others, 25 to a BatchWriteItem."""
        requests: list[dict[str, Any]] = [
            {
                "PutRequest": {
                    "Item": {
                        "key": {"S": key},
                        "document": {"S": json.dumps(document, sort_keys=True)},
                    }
                }
            }
            for key, document in documents.items()
        ]
        requests += [{"DeleteRequest": {"Key": {"key": {"S": key}}}} for key in deleted]
        for chunk in chunked(requests, BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self.table: list(chunk)}
            while pending:
                response = self.dynamodb.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})

    def register_array(
        self, array_id: str, name: str | None, size: int | None, owner: str | None = None
    ) -> None:
        """Remember an array's name, declared size and owner, from its instances' spawn
        tags.

        The first owner recorded stays: an instance that someone else tags later with
        the same array id cannot take the array over (that is logged).
        """
        assignments = {"array_id": ("#array_id = :array_id", {"S": array_id})}
        if name:
            assignments["name"] = ("#name = :name", {"S": name})
        if size is not None:
            assignments["size"] = ("#size = :size", {"N": str(size)})
        if owner:
            assignments["owner"] = ("#owner = if_not_exists(#owner, :owner)", {"S": owner})
        response = self.dynamodb.update_item(
            TableName=self.table,
            Key={"key": {"S": registration_key(array_id)}},
            UpdateExpression="SET " + ", ".join(a for a, _ in assignments.values()),
            ExpressionAttributeNames={f"#{attr}": attr for attr in assignments},
            ExpressionAttributeValues={f":{attr}": v for attr, (_, v) in assignments.items()},
            ReturnValues="ALL_NEW",
        )
        kept = response.get("Attributes", {}).get("owner", {}).get("S")
        if owner and kept != owner:
            logger.warning(
                "array already registered to another owner; owner kept",
                extra={"array_id": array_id},
            )

    def register_arrays(self, facts: Iterable[InstanceFacts], settings: Settings) -> None:
        """Register the arrays of managed instances coming up (or found running): one
        write per array, from the first of its instances in `facts`."""
        first: dict[str, InstanceFacts] = {}
        for item in facts:
            if item.array_id and item.managed(settings):
                first.setdefault(item.array_id, item)
        for array_id, item in first.items():
            membership = item.membership()
            self.register_array(
                array_id, membership["array_name"], membership["array_size"], item.owner
            )

    def array_record(self, array_id: str) -> ArrayRecord | None:
        """The array's registration, or None if no instance of it was ever seen."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"key": {"S": registration_key(array_id)}}
        ).get("Item")
        return None if item is None else _record(item, array_id)

    def array_info(self, array_id: str) -> tuple[str | None, int | None] | None:
        """(name, declared size) of an array seen on instances, or None if never seen."""
        record = self.array_record(array_id)
        return None if record is None else record.info

    def arrays_of(
        self, owner: str, limit: int, after: str | None = None
    ) -> tuple[list[ArrayRecord], str | None]:
        """Up to `limit` of one owner's arrays in array id order, after array id `after`,
        and the id to resume after (None at the end): a Query of `owner-arrays` reading
        at most `limit + 1` registrations."""
        found: list[ArrayRecord] = []
        start = after
        while len(found) <= limit:
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": owner}},
                "Limit": limit + 1 - len(found),
            }
            if start is not None:
                request["ExclusiveStartKey"] = {
                    "owner": {"S": owner},
                    "array_id": {"S": start},
                    "key": {"S": registration_key(start)},
                }
            response = self.dynamodb.query(**request)
            found.extend(_record(item, item["array_id"]["S"]) for item in response["Items"])
            last = response.get("LastEvaluatedKey")
            if last is None:
                break
            start = last["array_id"]["S"]
        if len(found) > limit:
            return found[:limit], found[limit - 1].array_id
        return found, None
