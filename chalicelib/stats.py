"""Fleet counters, fleet snapshots and array registrations, in the stats table
(`STATS_TABLE`).

Interruptions are counted into an all-time counter and per-minute and per-hour
buckets (which expire), so "last hour" and "last 24 h" are a handful of key reads
instead of a scan of history.

Arrays are registered from their instances' spawn tags (name, declared size, owner).
A sparse global secondary index, `owner-arrays` (hash `owner`, range `array_id`),
holds only the registrations that carry an owner, so one owner's arrays are a Query
that reads just their page, whatever the number of arrays (per-user isolation,
`chalicelib.access`). The fleet snapshot is stored once for the fleet and once per
owner.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.alarms import chunked

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

INTERRUPTIONS_TOTAL = "interruptions#all"
REBALANCE_TOTAL = "rebalance#all"
SNAPSHOT = "fleet#snapshot"
# The owners that have a snapshot of their own, so a vanished owner's can be removed.
SNAPSHOT_OWNERS = "fleet#snapshot-owners"
OWNER_INDEX = "owner-arrays"
# DynamoDB's limits per BatchGetItem and BatchWriteItem request.
BATCH_GET_MAX = 100
BATCH_WRITE_MAX = 25
MINUTE_BUCKET_TTL = timedelta(days=2)
HOUR_BUCKET_TTL = timedelta(days=3)


def minute_key(at: datetime) -> str:
    return f"interruptions#minute#{at:%Y-%m-%dT%H:%M}"


def hour_key(at: datetime) -> str:
    return f"interruptions#hour#{at:%Y-%m-%dT%H}"


def array_key(array_id: str) -> str:
    return f"interruptions#array#{array_id}"


def owner_interruptions_key(owner: str) -> str:
    """The all-time interruption counter of one owner's instances."""
    return f"interruptions#owner#{owner}"


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


def increment(table: str, key: str, expires: datetime | None = None) -> dict[str, Any]:
    """A `TransactWriteItems` entry adding one to a counter (safe inside a transaction
    whose other entry guarantees it runs once)."""
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"key": {"S": key}},
        "UpdateExpression": "ADD #count :one",
        "ExpressionAttributeNames": {"#count": "count"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if expires is not None:
        update["UpdateExpression"] += " SET #expires = :expires"
        update["ExpressionAttributeNames"]["#expires"] = "expires_at"
        update["ExpressionAttributeValues"][":expires"] = {"N": str(int(expires.timestamp()))}
    return {"Update": update}


def interruption_increments(
    table: str, at: datetime, array_id: str | None, owner: str | None = None
) -> list[dict[str, Any]]:
    """Every counter one interruption adds to."""
    entries = [
        increment(table, INTERRUPTIONS_TOTAL),
        increment(table, minute_key(at), at + MINUTE_BUCKET_TTL),
        increment(table, hour_key(at), at + HOUR_BUCKET_TTL),
    ]
    if array_id:
        entries.append(increment(table, array_key(array_id)))
    if owner:
        entries.append(increment(table, owner_interruptions_key(owner)))
    return entries


def window_keys(now: datetime) -> tuple[list[str], list[str]]:
    """Minute keys of the last 60 minutes and hour keys of the last 24 hours (both
    including the current, partial bucket)."""
    minutes = [minute_key(now - timedelta(minutes=m)) for m in range(60)]
    hours = [hour_key(now - timedelta(hours=h)) for h in range(24)]
    return minutes, hours


def totals_from(counts: Mapping[str, int], now: datetime) -> dict[str, int]:
    """Interruption totals from counter values: last hour (to the minute), last 24 h
    (to the hour) and all time."""
    minutes, hours = window_keys(now)
    return {
        "last_hour": sum(counts.get(k, 0) for k in minutes),
        "last_24h": sum(counts.get(k, 0) for k in hours),
        "total": counts.get(INTERRUPTIONS_TOTAL, 0),
    }


class Stats:
    """Reads and writes of the stats table.

    Args:
        dynamodb: a DynamoDB client.
        table: `STATS_TABLE`.
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def counts(self, keys: list[str]) -> dict[str, int]:
        """Counter values by key (absent counters are left out); ≤ 100 keys a call."""
        found: dict[str, int] = {}
        for chunk in chunked(keys, BATCH_GET_MAX):
            request: dict[str, Any] = {self.table: {"Keys": [{"key": {"S": k}} for k in chunk]}}
            while request:
                response = self.dynamodb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    found[item["key"]["S"]] = int(item.get("count", {}).get("N", "0"))
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def interruption_totals(self, now: datetime) -> dict[str, int]:
        minutes, hours = window_keys(now)
        return totals_from(self.counts([*minutes, *hours, INTERRUPTIONS_TOTAL]), now)

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
