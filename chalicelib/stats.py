"""Fleet counters and the fleet snapshot, in the stats table (`STATS_TABLE`).

Interruptions are counted into an all-time counter and per-minute and per-hour
buckets (which expire), so "last hour" and "last 24 h" are a handful of key reads
instead of a scan of history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INTERRUPTIONS_TOTAL = "interruptions#all"
REBALANCE_TOTAL = "rebalance#all"
SNAPSHOT = "fleet#snapshot"
MINUTE_BUCKET_TTL = timedelta(days=2)
HOUR_BUCKET_TTL = timedelta(days=3)


def minute_key(at: datetime) -> str:
    return f"interruptions#minute#{at:%Y-%m-%dT%H:%M}"


def hour_key(at: datetime) -> str:
    return f"interruptions#hour#{at:%Y-%m-%dT%H}"


def array_key(array_id: str) -> str:
    return f"interruptions#array#{array_id}"


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


def interruption_increments(table: str, at: datetime, array_id: str | None) -> list[dict[str, Any]]:
    """Every counter one interruption adds to."""
    entries = [
        increment(table, INTERRUPTIONS_TOTAL),
        increment(table, minute_key(at), at + MINUTE_BUCKET_TTL),
        increment(table, hour_key(at), at + HOUR_BUCKET_TTL),
    ]
    if array_id:
        entries.append(increment(table, array_key(array_id)))
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
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": [{"key": {"S": k}} for k in keys[start : start + 100]]}
            }
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
