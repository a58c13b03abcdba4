"""Array summaries in DynamoDB: the stream aggregator, the tick, and the reads the API makes.

The arrays table holds one small item per array (`chalicelib.progress.summary.Summary`). The
progress table's stream (`NEW_AND_OLD_IMAGES`) keeps it current: a batch costs one
GetItem and one conditional PutItem per array it touches, however many rows changed.
The progress table itself is only ever read by a Query on one `array_id` (a recount, a
page of workers), never Scanned; the only write to it is the lost mark on the row of a
worker whose instance ended.

The tick looks only at active arrays: a summary carries the key of a sparse index
(`active-arrays`, keys only) while the tick must look at it, and loses it an hour after
its array finished (or three days after its last change). Its reads are one index
Query and one consistent `BatchGetItem` per 100 active arrays, however many arrays were
ever seen; a new row of a retired array brings it back. While no worker of an array
reports, EC2 is asked (every few minutes at most) whether any of its instances is left;
when none is, the workers still running are marked lost and the array is over.

Why a retried batch cannot double-count: each summary remembers, per stream shard, the
last sequence number applied (its watermark) and skips records at or below it.
Sequence numbers are ordered only within a shard, and a hot array's item collection
can be split across partitions, so one array's records can come from several shards
at once (two children of a split, read in parallel, interleave). A plain Lambda stream
event does not name its shard, and `DescribeStream` cannot tell it either: every open
shard's range is open-ended, so siblings' ranges overlap. The event source mapping is
therefore given a tumbling window (`TumblingWindowInSeconds` in
`infra/resources.json`), which makes Lambda name the shard in every event
(`shardId`); the handler answers with the window's (empty) `state`, as Lambda then
requires. Without a `shardId` the stream ARN stands in for the shard, which is exact
only while each array's rows sit on one shard. Watermarks of shards silent for longer
than the stream keeps records (24 h) are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.contract.rows import Invalid, Row, validate_row
from chalicelib.core.batching import BATCH_GET_MAX, batch_get, chunked
from chalicelib.core.observability import emit
from chalicelib.core.settings import Settings
from chalicelib.fleet.events import epoch_ms, iso
from chalicelib.fleet.registry import Registry, array_has_live_instances
from chalicelib.progress.history import HistoryStore
from chalicelib.progress.summary import (
    Change,
    Counts,
    Summary,
    Watermark,
    alerts_due,
    apply_changes,
    finished,
    fold_stalled,
    progress_view,
    sequence_key,
    with_recount,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

NAMESPACE = "Spawn/Arrays"
# The arrays table's sparse index of arrays the tick looks at (infra/resources.json).
ACTIVE_INDEX = "active-arrays"
TICK_KEY = "tick"
ACTIVE = "active"
# A finished array leaves the tick's set this long after it finished; one with no change
# for this long (stalled for good, its instances unknown) too. A new row brings it back.
RETIRE_AFTER_FINISHED_SECONDS = 3600
RETIRE_AFTER_IDLE_SECONDS = 3 * 24 * 3600
# While no worker of an array reports, EC2 is asked at most this often whether any of
# its instances is left.
GONE_CHECK_SECONDS = 300
# Writers of one summary are the stream handler, the tick and a recount; a few retries
# outlast any realistic collision.
SAVE_ATTEMPTS = 5
# Stream records arrive within seconds of the change; a minute without any means
# no change of this array is in flight.
RECOUNT_QUIET_SECONDS = 60
# Bounds the rows one `GET /workers` request examines when a status filter is rare, so
# a request stays fast; the cursor then resumes where it stopped.
EXAMINE_MAX = 1000

ArrayInfo = Callable[[str], tuple[str | None, int | None] | None]
"""(name, declared size) of an array from the instances' spawn tags, or None if unknown."""

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
        "running_by_second": {str(s): n for s, n in summary.running_by_second.items()},
        "stall_fold": summary.stall_fold,
        "recent": [row.to_json() for row in summary.recent],
        "first_update_ms": summary.first_update_ms,
        "last_update_ms": summary.last_update_ms,
        "samples": [list(sample) for sample in summary.samples],
        "watermarks": {shard: list(mark) for shard, mark in summary.watermarks.items()},
        "recounted_at_ms": summary.recounted_at_ms,
        "recount_ended_ms": summary.recount_ended_ms,
        "recount_again": summary.recount_again,
        "last_change_ms": summary.last_change_ms,
        "finished_alerted": summary.finished_alerted,
        "failing_alerted": summary.failing_alerted,
        "stalled_alerted": summary.stalled_alerted,
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
        ),
        running_by_second={int(s): int(n) for s, n in values.get("running_by_second", {}).items()},
        stall_fold=_optional_int(values.get("stall_fold")),
        recent=tuple(recent),
        first_update_ms=_optional_int(values.get("first_update_ms")),
        last_update_ms=_optional_int(values.get("last_update_ms")),
        samples=tuple((int(t), int(n)) for t, n in values.get("samples", [])),
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
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
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


def _plain(value: Any) -> Any:
    """A deserialized DynamoDB value as JSON (numbers, sets and bytes made printable)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return value


def worker_json(image: Mapping[str, Any], now: datetime, stall_after: int) -> dict[str, Any]:
    """One row as `GET /arrays/{id}/workers` shows it, with `stalled`; an invalid row
    shows `status` "invalid", why, and its attributes as found."""
    parsed = validate_row(image)
    if isinstance(parsed, Invalid):
        return {
            "task_index": _plain(image.get("task_index")),
            "status": "invalid",
            "stalled": False,
            "invalid_reason": parsed.reason,
            "attributes": {
                k: _plain(v) for k, v in image.items() if k not in ("array_id", "task_index")
            },
        }
    line_ms = epoch_ms(now) - stall_after * 1000
    stalled = parsed.shown_status == "running" and parsed.last_update_ms < line_ms
    return {**parsed.to_json(), "stalled": stalled}


def row_status(image: Mapping[str, Any]) -> str:
    parsed = validate_row(image)
    return "invalid" if isinstance(parsed, Invalid) else parsed.shown_status


def lost_cause(instance: Mapping[str, Any]) -> str:
    """Why a worker was lost, from its instance's registry row: spot reclaimed the
    instance (its last warning said terminate), or the instance ended otherwise."""
    if instance.get("interruption_action") == "terminate":
        return "spot_interruption"
    return "instance_ended"


class ProgressRows:
    """The progress table: reads are always a Query on one `array_id` (never a Scan);
    the only write is the lost mark on a row whose worker's instance ended.

    `items_read` counts the items the Queries returned, for benchmarks.
    """

    def __init__(self, dynamodb: DynamoDBClient, progress_table: str) -> None:
        self.dynamodb = dynamodb
        self.table = progress_table
        self.items_read = 0

    def mark_lost(
        self, array_id: str, task_index: int, instance_id: str, cause: str, at: datetime
    ) -> bool:
        """Mark a worker lost (see `chalicelib.progress.summary`): only a row still `running` on
        that very instance, so a final status written in time, or the task taken over
        by another instance, is never touched. Returns whether a row was marked."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"array_id": {"S": array_id}, "task_index": {"N": str(task_index)}},
                UpdateExpression="SET #instance = :instance, #cause = :cause, #at = :at",
                ConditionExpression="#status = :running AND #instance_id = :instance",
                ExpressionAttributeNames={
                    "#instance": "lost_instance_id",
                    "#cause": "lost_cause",
                    "#at": "lost_at",
                    "#status": "status",
                    "#instance_id": "instance_id",
                },
                ExpressionAttributeValues={
                    ":instance": {"S": instance_id},
                    ":cause": {"S": cause},
                    ":at": {"S": iso(at)},
                    ":running": {"S": "running"},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_gone_instance(self, instance: Mapping[str, Any], at: datetime) -> bool:
        """Mark lost the worker of an instance that ended, from its registry row (which
        holds its array and index, from spawn's tags); False if it has none, or its
        worker had already reported a final status."""
        array_id, index = instance.get("array_id"), instance.get("array_index")
        if not array_id or index is None:
            return False
        return self.mark_lost(
            str(array_id), int(index), str(instance["instance_id"]), lost_cause(instance), at
        )

    def _query(
        self, array_id: str, limit: int | None, after: str | None, consistent: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "array_id = :a",
            "ExpressionAttributeValues": {":a": {"S": array_id}},
            "ConsistentRead": consistent,
        }
        if limit is not None:
            request["Limit"] = limit
        if after is not None:
            request["ExclusiveStartKey"] = {"array_id": {"S": array_id}, "task_index": {"N": after}}
        response = self.dynamodb.query(**request)
        self.items_read += len(response["Items"])
        rows = [{k: _deserialize(v) for k, v in item.items()} for item in response["Items"]]
        last = response.get("LastEvaluatedKey")
        return rows, None if last is None else last["task_index"]["N"]

    def all(self, array_id: str) -> list[dict[str, Any]]:
        """Every row of the array, read consistently (for a recount)."""
        rows: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page, after = self._query(array_id, None, after, consistent=True)
            rows.extend(page)
            if after is None:
                return rows

    def workers(
        self,
        array_id: str,
        status: str | None,
        limit: int,
        after: str | None,
        now: datetime,
        stall_after: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the array's rows in `task_index` order, optionally of one status.

        Args:
            status: running, completed, failed or invalid; None for all.
            limit: rows wanted (1..100).
            after: the `task_index` (as DynamoDB number text) to resume after.

        Returns the rows as JSON and the `task_index` to resume after, or None at the end.
        At most `EXAMINE_MAX` rows are read per call, so a rare status may give a short
        page that still has a resume point.
        """
        chosen: list[dict[str, Any]] = []
        examined = 0
        while True:
            # Unfiltered, one row beyond the page says whether there is more.
            want = limit + 1 if status is None else 4 * (limit + 1)
            page, page_after = self._query(
                array_id, min(want, EXAMINE_MAX - examined), after, consistent=False
            )
            for image in page:
                examined += 1
                key = str(image.get("task_index"))
                if status is not None and row_status(image) != status:
                    after = key
                    continue
                if len(chosen) == limit:
                    return chosen, after
                chosen.append(worker_json(image, now, stall_after))
                after = key
            if page_after is None:
                return chosen, None
            after = page_after
            if examined >= EXAMINE_MAX:
                return chosen, after


@dataclass
class TickReport:
    """What one tick did; `items_read` is DynamoDB items read (summaries and rows)."""

    arrays: int = 0
    published: int = 0
    alerts: int = 0
    recounted: int = 0
    errors: int = 0
    items_read: int = 0


def _figures(view: Mapping[str, Any]) -> dict[str, tuple[MetricUnit, float]]:
    workers = view["workers"]
    return {
        "WorkersTotal": (MetricUnit.Count, workers["total"]),
        "WorkersRunning": (MetricUnit.Count, workers["running"]),
        "WorkersCompleted": (MetricUnit.Count, workers["completed"]),
        "WorkersFailed": (MetricUnit.Count, workers["failed"]),
        "WorkersStalled": (MetricUnit.Count, workers["stalled"]),
        "TasksCompleted": (MetricUnit.Count, view["tasks_completed"]),
        "PercentComplete": (MetricUnit.Percent, view["percent_complete"]),
    }


class ProgressAggregator:
    """Keeps summaries current from the stream, and publishes them on each tick.

    Args:
        dynamodb: a DynamoDB client (progress table Queries).
        store: the arrays table.
        settings: `PROGRESS_TABLE`, `STALL_AFTER_SECONDS`, `FAILED_ALERT_PERCENT`,
            `RECOUNT_EVERY_SECONDS`.
        alerts: sends the SPEC §8 array alerts.
        array_info: (name, declared size) of an array, from the instances registry.
        clock: the current time (default: `utc_now`).
        history: records each unfinished array's counts on every tick (default: none).
        ec2: an EC2 client, to learn whether any instance of an array is left; without
            one an array is over only when every worker finished or was lost.
        registry: the instances table, for why a worker was lost (interrupted or not).

    Example:
        >>> aggregator.handle_stream(event)   # the stream Lambda
        {'batchItemFailures': []}
        >>> aggregator.tick(utc_now())        # the scheduled Lambda
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        store: SummaryStore,
        settings: Settings,
        alerts: AlertPublisher,
        array_info: ArrayInfo,
        clock: Callable[[], datetime] = utc_now,
        history: HistoryStore | None = None,
        ec2: EC2Client | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.rows = ProgressRows(dynamodb, settings.progress_table)
        self.history = history
        self.store = store
        self.settings = settings
        self.alerts = alerts
        self.array_info = array_info
        self.clock = clock
        self.ec2 = ec2
        self.registry = registry
        self.conflicts = 0

    @property
    def items_read(self) -> int:
        """DynamoDB items read so far, summaries and progress rows together."""
        return self.store.items_read + self.rows.items_read

    def handle_stream(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a DynamoDB stream batch (all from one shard); returns Lambda's
        partial-batch response, with the tumbling window's `state` when there is one.

        For each array whose summary could not be saved, the response names its first
        record, so Lambda resumes there; records of arrays already saved that it replays
        are skipped by their watermark.
        """
        if not isinstance(event, Mapping):
            return {"batchItemFailures": []}
        records = event.get("Records")
        shard = event.get("shardId")
        if not isinstance(shard, str) or not shard:
            shard = None
        by_array: dict[str, list[tuple[str, Change]]] = {}
        for record in records if isinstance(records, list) else []:
            parsed = self._parse(record, shard)
            if parsed is not None:
                array_id, sequence, change = parsed
                by_array.setdefault(array_id, []).append((sequence, change))
        failures: list[dict[str, str]] = []
        for array_id, changes in by_array.items():
            try:
                self._apply(array_id, [change for _, change in changes])
            except Exception:
                logger.exception("array summary update failed", extra={"array_id": array_id})
                failures.append({"itemIdentifier": changes[0][0]})
        if "window" in event:
            return {"state": {}, "batchItemFailures": failures}
        return {"batchItemFailures": failures}

    def _parse(self, record: Any, shard: str | None) -> tuple[str, str, Change] | None:
        """(array id, raw sequence number, change) of a record; None, logged, if unusable."""
        try:
            data = record["dynamodb"]
            array_id = data["Keys"]["array_id"]["S"]
            sequence = data["SequenceNumber"]
            if not isinstance(array_id, str) or not array_id or not isinstance(sequence, str):
                raise TypeError("array_id or SequenceNumber is not a non-empty string")
            key = sequence_key(sequence)
            created = data.get("ApproximateCreationDateTime")
            # Lambda gives epoch seconds; boto3's GetRecords (the local stack) a datetime.
            if isinstance(created, datetime):
                approx = created.astimezone(UTC)
            elif isinstance(created, int | float | str):
                approx = datetime.fromtimestamp(float(created), tz=UTC)
            else:
                approx = self.clock()
            old, new = _image(data.get("OldImage")), _image(data.get("NewImage"))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            logger.error(
                "skipping unusable stream record",
                extra={"event_id": _event_id(record), "reason": str(exc)},
            )
            return None
        if old is None and new is None:
            logger.error(
                "skipping stream record without images (stream must be NEW_AND_OLD_IMAGES)",
                extra={"event_id": _event_id(record)},
            )
            return None
        source = shard or record.get("eventSourceARN") or "stream"
        return array_id, sequence, Change(str(source), key, old, new, approx)

    def _apply(self, array_id: str, changes: list[Change]) -> None:
        for _ in range(SAVE_ATTEMPTS):
            summary = self.store.get(array_id) or Summary.new(array_id)
            updated = apply_changes(summary, changes)
            if updated is summary:
                return
            updated = fold_stalled(updated, self.clock(), self.settings.stall_after_seconds)
            try:
                self.store.save(updated)
                return
            except ConflictError:
                self.conflicts += 1
        raise ConflictError(f"summary of {array_id} kept changing; {SAVE_ATTEMPTS} attempts")

    def recount(self, array_id: str) -> Summary | None:
        """Recount one array from a paginated Query of its rows, and save it; None when
        the stream changed the summary during the Query (tried again once quiet).

        The summary is read before the Query and saved only if its version has not
        moved: a change the stream applied meanwhile may be missing from rows the Query
        had already read, and overwriting it would lose it until the next recount.
        """
        started = self.clock()
        summary = self.store.get(array_id) or Summary.new(array_id)
        rows = self.rows.all(array_id)
        ended = self.clock()
        updated = fold_stalled(
            with_recount(summary, rows, started, ended), ended, self.settings.stall_after_seconds
        )
        try:
            return self.store.save(updated)
        except ConflictError:
            self.conflicts += 1
            logger.info("recount left for later: the array changed", extra={"array_id": array_id})
            return None

    def _recount_due(self, summary: Summary, now: datetime) -> bool:
        """Due every `RECOUNT_EVERY_SECONDS`, but only once the array is quiet.

        A Query is not a snapshot: a row that changes while it runs can be counted by
        the Query and again by its stream record. Recounting only when no change has
        arrived for `RECOUNT_QUIET_SECONDS` keeps the recount from adding the drift it
        is there to remove; a busy array is recounted when it settles.
        """
        now_ms = epoch_ms(now)
        if summary.last_change_ms is not None and (
            now_ms - summary.last_change_ms < RECOUNT_QUIET_SECONDS * 1000
        ):
            return False
        if summary.recounted_at_ms is None or summary.recount_again:
            return True
        return now_ms - summary.recounted_at_ms >= self.settings.recount_every_seconds * 1000

    def tick(self, now: datetime) -> TickReport:
        """Publish metrics, send due alerts, recount where due and end arrays whose
        instances are all gone, for every active array (the sparse index: reads in
        proportion to active arrays, not to every array ever seen).

        A finished array publishes its final figures once (`final_published`) and is
        then left alone until a row of it changes; an hour after it finished (or three
        days after its last change, finished or not) it leaves the active set.
        """
        report = TickReport()
        read_before = self.items_read
        for summary in self.store.active():
            report.arrays += 1
            try:
                if self._retire_due(summary, now):
                    self._update(summary.array_id, _retired)
                elif not summary.final_published:
                    self._tick_array(summary, now, report)
            except Exception:
                report.errors += 1
                logger.exception("array tick failed", extra={"array_id": summary.array_id})
        report.items_read = self.items_read - read_before
        return report

    @staticmethod
    def _retire_due(summary: Summary, now: datetime) -> bool:
        now_ms = epoch_ms(now)
        if summary.final_published and summary.finished_at_ms is not None:
            return now_ms - summary.finished_at_ms >= RETIRE_AFTER_FINISHED_SECONDS * 1000
        last = summary.last_change_ms
        return last is not None and now_ms - last >= RETIRE_AFTER_IDLE_SECONDS * 1000

    def _update(self, array_id: str, change: Callable[[Summary], Summary]) -> Summary | None:
        """Read, change and save one summary, again on a fresh read after a conflict."""
        for _ in range(SAVE_ATTEMPTS):
            summary = self.store.get(array_id)
            if summary is None:
                return None
            updated = change(summary)
            if updated == summary:
                return summary
            try:
                return self.store.save(updated)
            except ConflictError:
                self.conflicts += 1
        raise ConflictError(f"summary of {array_id} kept changing; {SAVE_ATTEMPTS} attempts")

    def _gone_check(self, summary: Summary, now: datetime) -> Summary:
        """While no worker reports, ask EC2 (at most every `GONE_CHECK_SECONDS`) whether
        any instance of the array is left; if none is, mark its running workers lost and
        the array's instances gone. Arrays never seen on instances are not asked about."""
        if self.ec2 is None or summary.instances_gone:
            return summary
        now_ms = epoch_ms(now)
        stall_after = self.settings.stall_after_seconds
        reporting = summary.counts.running - summary.stalled(now, stall_after)
        checked = summary.gone_checked_ms
        if reporting > 0 or (checked is not None and now_ms - checked < GONE_CHECK_SECONDS * 1000):
            return summary
        if self.array_info(summary.array_id) is None:
            return summary
        gone = not array_has_live_instances(self.ec2, summary.array_id)
        if gone:
            self._sweep(summary.array_id, now)
        updated = self._update(
            summary.array_id,
            lambda s: replace(s, gone_checked_ms=now_ms, instances_gone=s.instances_gone or gone),
        )
        return summary if updated is None else updated

    def _sweep(self, array_id: str, now: datetime) -> None:
        """Mark lost every worker of a gone array still running on its instance."""
        stranded = [
            parsed
            for parsed in map(validate_row, self.rows.all(array_id))
            if isinstance(parsed, Row) and parsed.shown_status == "running"
        ]
        known = (
            {} if self.registry is None else self.registry.get_many(r.instance_id for r in stranded)
        )
        marked = sum(
            self.rows.mark_lost(
                array_id,
                r.task_index,
                r.instance_id,
                lost_cause(known.get(r.instance_id, {})),
                now,
            )
            for r in stranded
        )
        logger.info("array's instances are all gone", extra={"array_id": array_id, "lost": marked})

    def _tick_array(self, summary: Summary, now: datetime, report: TickReport) -> None:
        if self._recount_due(summary, now):
            recounted = self.recount(summary.array_id)
            if recounted is not None:
                summary = recounted
                report.recounted += 1
        summary = self._gone_check(summary, now)
        info = self.array_info(summary.array_id)
        stall_after = self.settings.stall_after_seconds
        if self.history is not None:
            self.history.record(progress_view(summary, info, now, stall_after), now)
        published: dict[str, tuple[MetricUnit, float]] | None = None
        sent: set[str] = set()
        for _ in range(SAVE_ATTEMPTS):
            view = progress_view(summary, info, now, stall_after)
            figures = _figures(view)
            # A retry after a conflict publishes again only if the figures moved.
            if figures != published:
                emit(NAMESPACE, figures, {"ArrayId": summary.array_id})
                published = figures
                report.published += 1
            due, updated = alerts_due(summary, view, self.settings.failed_alert_percent, now)
            for alert in due:
                if alert.event_type not in sent:
                    self.alerts.publish(alert)
                    sent.add(alert.event_type)
                    report.alerts += 1
            done = finished(view)
            finished_at = (summary.finished_at_ms or epoch_ms(now)) if done else None
            updated = replace(updated, final_published=done, finished_at_ms=finished_at)
            if updated == summary:
                return
            try:
                self.store.save(updated)
                return
            except ConflictError:
                self.conflicts += 1
                fresh = self.store.get(summary.array_id)
                if fresh is None:
                    return
                summary = fresh
        raise ConflictError(f"summary of {summary.array_id} kept changing")


def _retired(summary: Summary) -> Summary:
    return replace(summary, active=False)


def _event_id(record: Any) -> Any:
    return record.get("eventID") if isinstance(record, Mapping) else None


def _image(raw: Any) -> dict[str, Any] | None:
    """A stream image as plain values; attributes that do not decode are left out (the
    row then fails validation and counts as invalid, with the reason)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        return {}
    image: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            image[str(name)] = _deserialize(value)
        except (TypeError, ValueError, KeyError, AttributeError, InvalidOperation):
            logger.warning("undecodable attribute in stream image", extra={"attribute": name})
    return image
