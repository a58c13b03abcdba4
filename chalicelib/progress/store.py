"""The arrays table: one small summary item per array, read and saved with a version.

`SummaryStore` is the I/O around `chalicelib.progress.summary.Summary`: a consistent get,
a page of the table, a BatchGetItem of many arrays (`chalicelib.core.batching`), and a
save conditional on the version read, so concurrent writers (the stream handler, the
tick, a recount) never overwrite each other (`ConflictError`: read again and retry).
Active summaries carry the key of the sparse `active-arrays` index the tick Queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.contract.rows import Row, validate_row
from chalicelib.core.batching import BATCH_GET_MAX, batch_get, chunked, conditional_check_failed
from chalicelib.progress.summary import (
    Counts,
    Summary,
    Watermark,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The arrays table's sparse index of arrays the tick looks at (infra/resources.json).
ACTIVE_INDEX = "active-arrays"
TICK_KEY = "tick"
ACTIVE = "active"

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


class ConflictError(Exception):
    """Another writer saved the summary first (its version moved); read it again and retry."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_item(summary: Summary) -> dict[str, Any]:
    """The DynamoDB item (typed attribute values) for a summary; None fields are left out."""
    counts = summary.counts
    values: dict[str, Any] = {
        "array_id": summary.array_id,
        "version": summary.version,
        "running": counts.running,
        "completed": counts.completed,
        "failed": counts.failed,
        "invalid": counts.invalid,
        "lost": counts.lost,
        "lost_interrupted": counts.lost_interrupted,
        "tasks_completed": counts.tasks_completed,
        "declared_total": counts.declared_total,
        "declaring": counts.declaring,
        "closed_total": counts.closed_total,
        "closing": counts.closing,
        "tasks_settled": counts.tasks_settled,
        "running_by_second": {str(s): n for s, n in summary.running_by_second.items()},
        "stall_fold": summary.stall_fold,
        "recent": [row.to_json() for row in summary.recent],
        "first_update_ms": summary.first_update_ms,
        "last_update_ms": summary.last_update_ms,
        "samples": [list(sample) for sample in summary.samples],
        "task_samples": [list(sample) for sample in summary.task_samples],
        "watermarks": {shard: list(mark) for shard, mark in summary.watermarks.items()},
        "recounted_at_ms": summary.recounted_at_ms,
        "recount_ended_ms": summary.recount_ended_ms,
        "recount_again": summary.recount_again,
        "last_change_ms": summary.last_change_ms,
        "finished_alerted": summary.finished_alerted,
        "failing_alerted": summary.failing_alerted,
        "stalled_alerted": summary.stalled_alerted,
        "budget_alerted": list(summary.budget_alerted) or None,
        "final_published": summary.final_published,
        "instances_gone": summary.instances_gone,
        "gone_checked_ms": summary.gone_checked_ms,
        "finished_at_ms": summary.finished_at_ms,
        # The key of the sparse index the tick reads: present only while active.
        TICK_KEY: ACTIVE if summary.active else None,
    }
    return {k: _serialize(v) for k, v in values.items() if v is not None}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _watermark(stored: Any) -> Watermark:
    # Items saved before watermarks were per shard hold the sequence alone; with no time
    # they are dropped at the next save, as their key (the stream ARN) is no longer used.
    if isinstance(stored, str):
        return Watermark(stored, 0)
    sequence, seen_ms = stored
    return Watermark(str(sequence), int(seen_ms))


def from_item(item: Mapping[str, Any]) -> Summary:
    """The summary stored in a DynamoDB item (typed attribute values)."""
    values = {k: _deserialize(v) for k, v in item.items()}
    array_id = str(values["array_id"])
    recent = []
    for stored in values.get("recent", []):
        if stored.get("status") == "lost":
            # Shown as lost: stored back as the marked running row it is.
            stored = {**stored, "status": "running", "lost_instance_id": stored.get("instance_id")}
        row = validate_row({**stored, "array_id": array_id})
        # Stored rows were valid when written; one that is not is dropped, not shown.
        if isinstance(row, Row):
            recent.append(row)
    return Summary(
        array_id=array_id,
        counts=Counts(
            running=int(values.get("running", 0)),
            completed=int(values.get("completed", 0)),
            failed=int(values.get("failed", 0)),
            invalid=int(values.get("invalid", 0)),
            tasks_completed=int(values.get("tasks_completed", 0)),
            lost=int(values.get("lost", 0)),
            lost_interrupted=int(values.get("lost_interrupted", 0)),
            # Items saved before task sums count none; the next recount fills them in.
            declared_total=int(values.get("declared_total", 0)),
            declaring=int(values.get("declaring", 0)),
            closed_total=int(values.get("closed_total", 0)),
            closing=int(values.get("closing", 0)),
            tasks_settled=int(values.get("tasks_settled", 0)),
        ),
        running_by_second={int(s): int(n) for s, n in values.get("running_by_second", {}).items()},
        stall_fold=_optional_int(values.get("stall_fold")),
        recent=tuple(recent),
        first_update_ms=_optional_int(values.get("first_update_ms")),
        last_update_ms=_optional_int(values.get("last_update_ms")),
        samples=tuple((int(t), int(n)) for t, n in values.get("samples", [])),
        task_samples=tuple((int(t), int(n)) for t, n in values.get("task_samples", [])),
        watermarks={
            str(shard): _watermark(mark) for shard, mark in values.get("watermarks", {}).items()
        },
        recounted_at_ms=_optional_int(values.get("recounted_at_ms")),
        recount_ended_ms=_optional_int(values.get("recount_ended_ms")),
        recount_again=bool(values.get("recount_again", False)),
        last_change_ms=_optional_int(values.get("last_change_ms")),
        version=int(values.get("version", 0)),
        finished_alerted=bool(values.get("finished_alerted", False)),
        failing_alerted=bool(values.get("failing_alerted", False)),
        stalled_alerted=bool(values.get("stalled_alerted", False)),
        budget_alerted=tuple(str(level) for level in values.get("budget_alerted", [])),
        final_published=bool(values.get("final_published", False)),
        instances_gone=bool(values.get("instances_gone", False)),
        gone_checked_ms=_optional_int(values.get("gone_checked_ms")),
        finished_at_ms=_optional_int(values.get("finished_at_ms")),
        active=values.get(TICK_KEY) == ACTIVE,
    )


class SummaryStore:
    """The arrays table: one summary item per array.

    Args:
        dynamodb: a DynamoDB client.
        arrays_table: the table name (`ARRAYS_TABLE`).

    `items_read` counts the items every read returned, for benchmarks.
    """

    def __init__(self, dynamodb: DynamoDBClient, arrays_table: str) -> None:
        self.dynamodb = dynamodb
        self.table = arrays_table
        self.items_read = 0

    def get(self, array_id: str, consistent: bool = True) -> Summary | None:
        """The array's summary; `consistent` for read-modify-write, not for display."""
        response = self.dynamodb.get_item(
            TableName=self.table, Key={"array_id": {"S": array_id}}, ConsistentRead=consistent
        )
        item = response.get("Item")
        if item is None:
            return None
        self.items_read += 1
        return from_item(item)

    def get_many(self, array_ids: list[str]) -> dict[str, Summary]:
        """The summaries of up to 100 arrays in one BatchGetItem (eventually consistent,
        for display); arrays without one are absent."""
        found: dict[str, Summary] = {}
        if not array_ids:
            return found
        keys = [{"array_id": {"S": array_id}} for array_id in dict.fromkeys(array_ids)]
        if len(keys) > 100:
            raise ValueError("at most 100 arrays per BatchGetItem")
        for item in batch_get(self.dynamodb, self.table, keys):
            self.items_read += 1
            summary = from_item(item)
            found[summary.array_id] = summary
        return found

    def save(self, summary: Summary) -> Summary:
        """Write `summary` if nobody saved the array since it was read; returns it as saved.

        Raises:
            ConflictError: the stored version is no longer `summary.version`.
        """
        saved = replace(summary, version=summary.version + 1)
        if summary.version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(array_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(summary.version)}},
            }
        try:
            self.dynamodb.put_item(TableName=self.table, Item=to_item(saved), **condition)
        except ClientError as exc:
            if conditional_check_failed(exc):
                raise ConflictError(
                    f"summary of {summary.array_id} changed since version {summary.version}"
                ) from None
            raise
        return saved

    def list_page(
        self, limit: int, start_key: str | None = None
    ) -> tuple[list[Summary], str | None]:
        """Up to `limit` summaries after array id `start_key`, and the id to resume after
        (None when there are no more). The arrays table holds one item per array, so this
        Scan is small; it never touches the progress table."""
        found: list[Summary] = []
        start = start_key
        while len(found) <= limit:
            request: dict[str, Any] = {"TableName": self.table, "Limit": limit + 1 - len(found)}
            if start is not None:
                request["ExclusiveStartKey"] = {"array_id": {"S": start}}
            response = self.dynamodb.scan(**request)
            self.items_read += len(response["Items"])
            found.extend(from_item(item) for item in response["Items"])
            last = response.get("LastEvaluatedKey")
            if last is None:
                break
            start = last["array_id"]["S"]
        if len(found) > limit:
            return found[:limit], found[limit - 1].array_id
        return found, None

    def active(self) -> Iterator[Summary]:
        """Every summary the tick looks at: the keys from the sparse index (only active
        summaries carry its key), then the summaries, read consistently, 100 a call.
        Costs reads in proportion to active arrays, however many arrays were ever seen."""
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=ACTIVE_INDEX,
            KeyConditionExpression="#tick = :active",
            ExpressionAttributeNames={"#tick": TICK_KEY},
            ExpressionAttributeValues={":active": {"S": ACTIVE}},
        )
        for page in pages:
            self.items_read += len(page["Items"])
            keys = [{"array_id": item["array_id"]} for item in page["Items"]]
            for chunk in chunked(keys, BATCH_GET_MAX):
                items = batch_get(self.dynamodb, self.table, chunk, consistent=True)
                self.items_read += len(items)
                found = [from_item(item) for item in items]
                # A summary retired between the index read and this one is no longer active.
                yield from sorted((s for s in found if s.active), key=lambda s: s.array_id)
