"""Array history (`GET /arrays/{id}/history`): worker counts over time, bounded.

The progress tick appends one point per array a minute. Points live in two items of
the stats table per array, a recent one rewritten each tick and an archive rewritten
about hourly and compacted (per minute to 24 h, per 10 minutes to 7 days, per hour to
30 days), so a read is one BatchGetItem and a write costs a few units, not ~100.
Details: docs/api.md ("History").

Example:
    >>> compact([Point(0, 10, 1, 0, 9, 0), Point(30, 10, 2, 0, 8, 0)], 3700, RECENT_TIERS)
    [Point(t=30, total=10, completed=2, failed=0, running=8, lost=0, tasks_completed=None, ...)]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from chalicelib.core.batching import batch_get, conditional_check_failed
from chalicelib.fleet.events import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

HOUR = 3600
DAY = 24 * HOUR
# (maximum age in seconds, slot length in seconds): the newest point of a slot is kept.
RECENT_TIERS: tuple[tuple[int, int], ...] = ((HOUR, 10), (4 * HOUR, 60))
ARCHIVE_TIERS: tuple[tuple[int, int], ...] = ((DAY, 60), (7 * DAY, 600), (30 * DAY, HOUR))
# The recent item spills points older than `SPILL_KEEP_SECONDS` once its oldest point is
# older than this: one archive write an hour.
SPILL_AFTER_SECONDS = 3 * HOUR
SPILL_KEEP_SECONDS = 2 * HOUR
RECENT_MAX = HOUR // 10 + 3 * HOUR // 60
ARCHIVE_MAX = DAY // 60 + 6 * DAY // 600 + 23 * DAY // HOUR
RETENTION_SECONDS = 30 * DAY


class Point(NamedTuple):
    """Workers by status at epoch second `t`, and tasks completed of the task total;
    `lost` and the task figures are None where they were not counted (or not known)."""

    t: int
    total: int
    completed: int
    failed: int
    running: int
    lost: int | None
    tasks_completed: int | None = None
    tasks_total: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The point as `GET /arrays/{id}/history` shows it."""
        return {
            "time": iso(datetime.fromtimestamp(self.t, tz=UTC)),
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "running": self.running,
            "lost": self.lost,
            "tasks_completed": self.tasks_completed,
            "tasks_total": self.tasks_total,
        }


def point_of(view: Mapping[str, Any], now: datetime) -> Point:
    """The point for a `progress_view` body taken at `now`."""
    workers = view["workers"]
    lost = workers.get("lost")
    tasks = view.get("tasks") or {}
    return Point(
        int(now.timestamp()),
        int(workers["total"]),
        int(workers["completed"]),
        int(workers["failed"]),
        int(workers["running"]),
        _count(lost),
        _count(tasks.get("completed")),
        _count(tasks.get("total")),
    )


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def compact(points: Iterable[Point], now: int, tiers: Sequence[tuple[int, int]]) -> list[Point]:
    """`points` thinned to the newest one per slot of its age's tier, oldest first;
    points older than the last tier are dropped (a point from the future counts as new)."""
    kept: dict[tuple[int, int], Point] = {}
    for point in sorted(points, key=lambda p: p.t):
        age = max(0, now - point.t)
        for tier, (max_age, slot) in enumerate(tiers):
            if age <= max_age:
                kept[(tier, point.t // slot)] = point  # sorted: the newest wins
                break
    return sorted(kept.values(), key=lambda p: p.t)


def merged(*groups: Iterable[Point]) -> list[Point]:
    """Points of several items in time order, one per second (a spill retried after a
    failed write may leave a point in both items)."""
    by_second: dict[int, Point] = {}
    for group in groups:
        for point in group:
            by_second[point.t] = point
    return [by_second[t] for t in sorted(by_second)]


def encode(points: Sequence[Point]) -> str:
    return json.dumps([list(p) for p in points], separators=(",", ":"))


def decode(text: str) -> list[Point]:
    """Points stored by `encode`; a malformed entry is skipped (logged), never fatal."""
    points: list[Point] = []
    try:
        raw = json.loads(text)
    except ValueError:
        logger.error("unreadable array history item; starting it afresh")
        return points
    for entry in raw if isinstance(raw, list) else []:
        try:
            # Points stored before the task figures have six entries.
            t, total, completed, failed, running, lost, *tasks = entry
            tasks_completed, tasks_total = [*tasks, None, None][:2]
            points.append(
                Point(
                    int(t),
                    int(total),
                    int(completed),
                    int(failed),
                    int(running),
                    _count(lost),
                    _count(tasks_completed),
                    _count(tasks_total),
                )
            )
        except (TypeError, ValueError):
            logger.error("skipping malformed array history point", extra={"point": str(entry)})
    return points


def recent_key(array_id: str) -> str:
    return f"history#{array_id}"


def archive_key(array_id: str) -> str:
    return f"history#{array_id}#archive"


class HistoryStore:
    """The array history items in the stats table (`STATS_TABLE`).

    Args:
        dynamodb: a DynamoDB client.
        table: the stats table's name.

    `items_read` counts the items reads returned, for tests and benchmarks.

    Example:
        >>> store.record(progress_view(summary, info, now, 600), now)   # each tick
        >>> store.points("render-20260127-a1b2c3", since=None, now=utc_now())
        [Point(t=1769508000, total=100, completed=38, ...), ...]
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.items_read = 0

    def _get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        wanted = [{"key": {"S": k}} for k in keys]
        items = batch_get(self.dynamodb, self.table, wanted, consistent=True)
        found = {item["key"]["S"]: item for item in items}
        self.items_read += len(found)
        return found

    def points(self, array_id: str, since: datetime | None, now: datetime) -> list[Point] | None:
        """The array's points at or after `since` (all if None), oldest first; None when
        the array has no history. Reads the archive only when `since` reaches before
        what the recent item can hold at `now`."""
        keys = [recent_key(array_id)]
        if since is None or since.timestamp() < now.timestamp() - SPILL_KEEP_SECONDS:
            keys.append(archive_key(array_id))
        items = self._get(keys)
        if not items:
            return None
        stored = [decode(item.get("points", {}).get("S", "[]")) for item in items.values()]
        cutoff = None if since is None else since.timestamp()
        return [p for p in merged(*stored) if cutoff is None or p.t >= cutoff]

    def record(self, view: Mapping[str, Any], now: datetime) -> None:
        """Append the point for `view` to its array's history (the tick's hook).

        Never raises: the history is a convenience, and a failure must not stop the
        tick's metrics and alerts. A point at or before the last one recorded (a
        duplicate tick) changes nothing.
        """
        array_id = str(view["array_id"])
        try:
            self._record(array_id, point_of(view, now))
        except Exception:
            logger.exception("array history not recorded", extra={"array_id": array_id})

    def _record(self, array_id: str, point: Point) -> None:
        item = self._get([recent_key(array_id)]).get(recent_key(array_id))
        points = decode(item["points"]["S"]) if item else []
        version = int(item["version"]["N"]) if item else 0
        if points and point.t <= points[-1].t:
            return
        points = compact([*points, point], point.t, RECENT_TIERS)
        if point.t - points[0].t > SPILL_AFTER_SECONDS:
            old = [p for p in points if point.t - p.t > SPILL_KEEP_SECONDS]
            self._spill(array_id, old, point.t)
            points = [p for p in points if point.t - p.t <= SPILL_KEEP_SECONDS]
        self._put(recent_key(array_id), points, point.t, version)

    def _spill(self, array_id: str, old: list[Point], now: int) -> None:
        item = self._get([archive_key(array_id)]).get(archive_key(array_id))
        archived = decode(item["points"]["S"]) if item else []
        version = int(item["version"]["N"]) if item else 0
        self._put(
            archive_key(array_id),
            compact(merged(archived, old), now, ARCHIVE_TIERS),
            now,
            version,
        )

    def _put(self, key: str, points: list[Point], now: int, version: int) -> None:
        """Write one item if nobody wrote it since it was read (overlapping ticks); the
        loser's point is dropped, as the winner recorded the same minute."""
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(#k)"}
            if version == 0
            else {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(version)}},
            }
        )
        if version == 0:
            condition["ExpressionAttributeNames"] = {"#k": "key"}
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "key": {"S": key},
                    "points": {"S": encode(points)},
                    "version": {"N": str(version + 1)},
                    "expires_at": {"N": str(now + RETENTION_SECONDS)},
                },
                **condition,
            )
        except ClientError as exc:
            if not conditional_check_failed(exc):
                raise
            logger.info("array history written by another tick", extra={"key": key})
