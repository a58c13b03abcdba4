"""Fleet snapshots in the stats table: the `GET /fleet` documents, fleet-wide and per owner.

The fleet tick stores one JSON document for the fleet and one per owner of instances
(per-user isolation, `chalicelib.core.access`), and remembers which owners have one, so
a vanished owner's is deleted. Each is one item, so `GET /fleet` is one read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import chunked

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SNAPSHOT = "fleet#snapshot"
# The owners that have a snapshot of their own, so a vanished owner's can be removed.
SNAPSHOT_OWNERS = "fleet#snapshot-owners"
# DynamoDB's limit per BatchWriteItem request.
BATCH_WRITE_MAX = 25


def owner_snapshot_key(owner: str) -> str:
    """Where the `GET /fleet` document of one owner's instances is stored."""
    return f"{SNAPSHOT}#owner#{owner}"


class Documents:
    """The JSON documents of `chalicelib.fleet.stats.Stats` (snapshots)."""

    dynamodb: DynamoDBClient
    table: str

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
