"""Progress rows written as workers write them, with the stream records DynamoDB makes.

In-process moto cannot serve DynamoDB Streams (PITFALLS), so the records are built the
way DynamoDB builds them: typed images (TypeSerializer), Keys, a growing SequenceNumber
and the stream ARN, next to the real write to the progress table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeSerializer

T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
_serialize = TypeSerializer().serialize


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Workers:
    """Writes worker rows to the progress table and makes the stream records DynamoDB
    would deliver for each write."""

    dynamodb: Any
    table: str
    stream_arn: str
    rows: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(10**20, 7))

    def _record(
        self, name: str, key: tuple[str, int], old: Any, new: Any, at: datetime
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ApproximateCreationDateTime": int(at.timestamp()),
            "Keys": {"array_id": {"S": key[0]}, "task_index": {"N": str(key[1])}},
            "SequenceNumber": str(next(self.sequence)),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            data["OldImage"] = old
        if new is not None:
            data["NewImage"] = new
        return {
            "eventID": f"evt-{data['SequenceNumber']}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": data,
            "eventSourceARN": self.stream_arn,
        }

    def write(
        self,
        array_id: str,
        index: int,
        status: str = "running",
        tasks: int = 0,
        at: datetime = T0,
        **extra: Any,
    ) -> dict[str, Any]:
        values = {
            "array_id": array_id,
            "task_index": index,
            "status": status,
            "tasks_completed": tasks,
            "last_update": stamp(at),
            "instance_id": f"i-{index:017x}",
            "hostname": f"ip-10-0-{index // 256}-{index % 256}",
            **extra,
        }
        item = {k: _serialize(v) for k, v in values.items()}
        self.dynamodb.put_item(TableName=self.table, Item=item)
        key = (array_id, index)
        old = self.rows.get(key)
        self.rows[key] = item
        return self._record("MODIFY" if old else "INSERT", key, old, item, at)

    def remove(self, array_id: str, index: int, at: datetime = T0) -> dict[str, Any]:
        key = (array_id, index)
        self.dynamodb.delete_item(
            TableName=self.table,
            Key={"array_id": {"S": array_id}, "task_index": {"N": str(index)}},
        )
        return self._record("REMOVE", key, self.rows.pop(key), None, at)

    def observe(self, array_id: str, index: int, at: datetime) -> dict[str, Any]:
        """The record DynamoDB makes for a write to a row by someone other than its
        worker: the row as last seen here, and as it is now in the table."""
        key = (array_id, index)
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"array_id": {"S": array_id}, "task_index": {"N": str(index)}},
        )["Item"]
        old = self.rows[key]
        assert item != old, "nobody else wrote the row"
        self.rows[key] = item
        return self._record("MODIFY", key, old, item, at)
