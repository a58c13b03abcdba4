"""Summaries kept current: the progress stream's aggregator and the minute tick.

A stream batch costs one GetItem and one conditional PutItem per array it touches,
however many rows changed; a retried batch cannot double-count, as each summary keeps
a per-shard watermark of the last sequence number applied (the mapping's tumbling
window makes Lambda name the shard). The tick reads only active arrays (one index
Query, one BatchGetItem per 100), records their history, sends due alerts, and marks
the workers of arrays whose instances are all gone as lost. Why, at length:
docs/layout.md ("Progress: why the stream handler cannot double-count").

Its length (over 400 lines): stream and tick share the save-with-retry and watermarks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import InvalidOperation
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeDeserializer

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.contract.rows import Row, validate_row
from chalicelib.core.observability import emit
from chalicelib.core.settings import Settings
from chalicelib.cost.store import CostStore
from chalicelib.fleet.events import epoch_ms
from chalicelib.fleet.registry import Registry, array_has_live_instances
from chalicelib.progress.budget import NAMESPACE as COST_NAMESPACE
from chalicelib.progress.budget import budget_alerts_due, cost_figures
from chalicelib.progress.history import HistoryStore
from chalicelib.progress.store import ConflictError, SummaryStore, utc_now
from chalicelib.progress.summary import (
    Change,
    Summary,
    alerts_due,
    apply_changes,
    finished,
    finished_at_ms,
    fold_stalled,
    progress_view,
    sequence_key,
    with_recount,
)
from chalicelib.progress.workers import ProgressRows, lost_cause

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

NAMESPACE = "Spawn/Arrays"
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

ArrayInfo = Callable[[str], tuple[str | None, int | None] | None]
"""(name, declared size) of an array from the instances' spawn tags, or None if unknown."""

_deserialize = TypeDeserializer().deserialize


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
        costs: the arrays' cost documents, read once per array a tick, so the view
            the alerts see carries `cost` (default: none).

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
        costs: CostStore | None = None,
    ) -> None:
        self.rows = ProgressRows(dynamodb, settings.progress_table)
        self.costs = costs
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
        sent: set[tuple[str, str]] = set()
        cost = None if self.costs is None else self.costs.array_cost(summary.array_id)
        for _ in range(SAVE_ATTEMPTS):
            view = progress_view(summary, info, now, stall_after, cost=cost)
            figures = _figures(view)
            # A retry after a conflict publishes again only if the figures moved.
            if figures != published:
                emit(NAMESPACE, figures, {"ArrayId": summary.array_id})
                emit(COST_NAMESPACE, cost_figures(view), {"ArrayId": summary.array_id})
                published = figures
                report.published += 1
            due, updated = alerts_due(summary, view, self.settings.failed_alert_percent, now)
            budget_due, updated = budget_alerts_due(updated, view, now)
            for alert in [*due, *budget_due]:
                if (alert.event_type, alert.severity) not in sent:
                    self.alerts.publish(alert)
                    sent.add((alert.event_type, alert.severity))
                    report.alerts += 1
            done = finished(view)
            finished_at = finished_at_ms(summary) if done else None
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
