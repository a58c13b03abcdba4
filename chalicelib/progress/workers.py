"""The progress table: the workers' rows, as the API pages them and the tick marks them.

`ProgressRows` is only ever a Query on one `array_id` (a recount, a page of workers) or
on one `instance_id` (the `workers-by-instance` index, for a worker whose instance has
no index tag), never a Scan; its one write is the lost mark on the row of a worker whose
instance ended, conditional on the row still being `running` on that instance.
`worker_json` is a row as `GET /arrays/{id}/workers` shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from chalicelib.contract.rows import Invalid, validate_row
from chalicelib.core.batching import conditional_check_failed
from chalicelib.fleet.events import epoch_ms, iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Bounds the rows one `GET /workers` request examines when a status filter is rare, so
# a request stays fast; the cursor then resumes where it stopped.
EXAMINE_MAX = 1000
# The progress table's index of rows by `instance_id` (keys only): a worker's row found
# from its instance when spawn's index tag is missing (docs/architecture.md).
BY_INSTANCE_INDEX = "workers-by-instance"
# What DynamoDB answers a Query on an index that does not exist or is still backfilling.
INDEX_MISSING = frozenset({"ValidationException", "ResourceNotFoundException"})

_deserialize = TypeDeserializer().deserialize
logger = logging.getLogger(__name__)


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
    return {**parsed.to_json(), **exit_state(image), "stalled": stalled}


def exit_state(image: Mapping[str, Any]) -> dict[str, Any]:
    """The job's `exit_code` (int) and `signal` (str) where the kit's `run` recorded
    them (SPEC §16); absent, or of another type, they are left out."""
    found: dict[str, Any] = {}
    code = image.get("exit_code")
    if isinstance(code, Decimal | int) and not isinstance(code, bool) and code == int(code):
        found["exit_code"] = int(code)
    signal = image.get("signal")
    if isinstance(signal, str) and 0 < len(signal) <= 32:
        found["signal"] = signal
    return found


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
    """The progress table: reads are always a Query on one `array_id` or one
    `instance_id` (never a Scan); the only write is the lost mark on a row whose
    worker's instance ended.

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
            if conditional_check_failed(exc):
                return False
            raise
        return True

    def mark_gone_instance(self, instance: Mapping[str, Any], at: datetime) -> bool:
        """Mark lost the worker of an instance that ended, from its registry row: the
        array and index of spawn's tags, else the rows the index finds by instance id (a
        worker started by hand, or the kit's identity from the environment). False if
        none is found, or its worker had already reported a final status."""
        instance_id = str(instance["instance_id"])
        array_id, index = instance.get("array_id"), instance.get("array_index")
        cause = lost_cause(instance)
        if array_id and index is not None:
            return self.mark_lost(str(array_id), int(index), instance_id, cause, at)
        try:
            found = self.rows_on_instance(instance_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in INDEX_MISSING:
                raise
            # Still being built after a deploy, or an older table: the tick's stall and
            # gone checks mark the worker lost later; redelivery would not help.
            logger.error(
                "index by instance unavailable; the worker is left to the tick",
                extra={"instance_id": instance_id, "reason": str(exc)},
            )
            return False
        return any([self.mark_lost(a, task, instance_id, cause, at) for a, task in found])

    def row(self, array_id: str, task_index: int) -> dict[str, Any] | None:
        """One worker's row as stored (one eventually consistent GetItem), or None."""
        response = self.dynamodb.get_item(
            TableName=self.table,
            Key={"array_id": {"S": array_id}, "task_index": {"N": str(task_index)}},
        )
        item = response.get("Item")
        if item is None:
            return None
        self.items_read += 1
        return {k: _deserialize(v) for k, v in item.items()}

    def rows_on_instance(self, instance_id: str) -> list[tuple[str, int]]:
        """The (array_id, task_index) of every row naming `instance_id`: one Query on
        the index (eventually consistent, as a GSI is; a row is written well before its
        instance ends), paged, in practice one page of one row."""
        keys: list[tuple[str, int]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_INSTANCE_INDEX,
            "KeyConditionExpression": "instance_id = :i",
            "ExpressionAttributeValues": {":i": {"S": instance_id}},
        }
        while True:
            response = self.dynamodb.query(**request)
            self.items_read += len(response["Items"])
            keys.extend(
                (item["array_id"]["S"], int(item["task_index"]["N"])) for item in response["Items"]
            )
            last = response.get("LastEvaluatedKey")
            if last is None:
                return keys
            request["ExclusiveStartKey"] = last

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
