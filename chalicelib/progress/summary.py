"""Array progress: worker rows → one summary per array. Pure, no AWS.

Each array keeps a `Summary` the DynamoDB stream moves one change at a time (the old
image leaves its count, the new one enters), so a refresh reads one item whatever the
array's size; `recount` corrects any drift. Invalid rows count as reported, in no
status; a `running` row marked lost for its own instance counts as lost (see
docs/architecture.md). Over 400 lines: one pure algorithm, top to bottom (docs/layout.md).

Example:
    >>> summary = apply_changes(Summary.new("render-20260127-a1b2c3"), [change])
    >>> progress_view(summary, ("render", 100), now, stall_after=600)["workers"]["pending"]
    99
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from chalicelib.alerts.publish import Alert
from chalicelib.contract.rows import MESSAGE_MAX, Invalid, Row, epoch_ms, iso, iso_ms, validate_row
from chalicelib.cost.view import cost_view

RECENT_ROWS = 5
# Completion-rate samples for the ETA: at most one closed sample per 30 s over the last
# 15 minutes, so the list stays around 30 entries.
SAMPLE_EVERY_SECONDS = 30
RATE_WINDOW_SECONDS = 900
ETA_MIN_SPAN_SECONDS = 60
# Task counts move with every progress row, so two observations a second apart give a
# rate; the window (up to 15 minutes, measured to `now`) smooths it.
TASK_ETA_MIN_SPAN_SECONDS = 1
# Stalled rows are folded into one histogram bucket this far behind the stall line,
# so a reader whose clock lags the aggregator's by up to a minute still counts exactly.
FOLD_MARGIN_SECONDS = 60
SEQUENCE_DIGITS = 40
# DynamoDB Streams keeps records 24 hours, so a shard whose newest applied record is
# older than this cannot replay anything any more: its watermark can go.
WATERMARK_KEEP_MS = 25 * 3600 * 1000
_ARRAY_ID_NAME = re.compile(r"^(?P<name>.+)-\d{8}-[0-9a-f]{6}$")


@dataclass(frozen=True)
class Counts:
    """Workers by status (`invalid` rows count in no status; `lost` ones apart from
    `running`, `lost_interrupted` of them by a spot interruption) and tasks done.

    Task sums (valid rows only): `declared_total` / `declaring` are the Σ `tasks_total`
    and the number of rows that declare one; `closed_total` / `closing` the Σ
    `tasks_completed` and number of ended rows (completed, failed, lost) that declare
    none (their work is known: what they did); `tasks_settled` Σ per row of the tasks no
    longer ahead: `tasks_completed` while running, its whole share once ended.
    """

    running: int = 0
    completed: int = 0
    failed: int = 0
    invalid: int = 0
    tasks_completed: int = 0
    lost: int = 0
    lost_interrupted: int = 0
    declared_total: int = 0
    declaring: int = 0
    closed_total: int = 0
    closing: int = 0
    tasks_settled: int = 0

    @property
    def reported(self) -> int:
        return self.running + self.completed + self.failed + self.lost + self.invalid

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.lost


class Watermark(NamedTuple):
    """The last stream record applied from one shard: its sequence key and creation time."""

    sequence: str
    seen_ms: int


@dataclass(frozen=True)
class Summary:
    """Everything known of one array, kept in one item of the arrays table.

    Attributes:
        counts: workers by status, from the rows as they are now.
        running_by_second: running workers by their `last_update` epoch second, so
            `stalled` is exact to the second for any `now`.
        stall_fold: when set, every running worker at or before this second is stalled
            for good and counted in that one bucket (keeps the item small).
        recent: the latest valid rows, newest first.
        first_update_ms / last_update_ms: earliest and latest `last_update` ever seen.
        samples: (epoch second, completed + failed) for the completion rate.
        task_samples: (epoch second, `tasks_settled`) for the task rate, kept alike.
        watermarks: per stream shard, the last applied sequence number (zero-padded) and
            the creation time of that record; shards silent for longer than the stream
            keeps records are dropped, so the item stays small.
        recounted_at_ms: when the last full recount's Query started; stream records
            created before it are already in the counts.
        recount_ended_ms: when that Query ended. A record created between the two may or
            may not be in the recount (a Query is not a snapshot): applying it sets
            `recount_again`, and the array is recounted once it is quiet.
        last_change_ms: creation time of the newest stream change applied; a recount
            waits until the array has been quiet for a while (see `quiet_since`).
        version: bumped by every save (optimistic concurrency).
        finished_alerted / failing_alerted / stalled_alerted: alerts already sent.
        budget_alerted: the `array_budget` levels already sent (chalicelib.progress.budget).
        final_published: the finished figures are published; nothing changed since.
        instances_gone: no instance of the array is left in EC2 (checked at most every
            few minutes, `gone_checked_ms`, while no worker is reporting): the array is
            over once its running rows are marked lost.
        finished_at_ms: when the tick first saw the array finished.
        active: the tick looks at the array. An array finished (or idle) for long enough
            leaves the tick's set; any change of its rows brings it back.
    """

    array_id: str
    counts: Counts = field(default_factory=Counts)
    running_by_second: Mapping[int, int] = field(default_factory=dict)
    stall_fold: int | None = None
    recent: tuple[Row, ...] = ()
    first_update_ms: int | None = None
    last_update_ms: int | None = None
    samples: tuple[tuple[int, int], ...] = ()
    task_samples: tuple[tuple[int, int], ...] = ()
    watermarks: Mapping[str, Watermark] = field(default_factory=dict)
    recounted_at_ms: int | None = None
    recount_ended_ms: int | None = None
    recount_again: bool = False
    last_change_ms: int | None = None
    version: int = 0
    finished_alerted: bool = False
    failing_alerted: bool = False
    stalled_alerted: bool = False
    budget_alerted: tuple[str, ...] = ()
    final_published: bool = False
    instances_gone: bool = False
    gone_checked_ms: int | None = None
    finished_at_ms: int | None = None
    active: bool = True

    @classmethod
    def new(cls, array_id: str) -> Summary:
        return cls(array_id=array_id)

    def stalled(self, now: datetime, stall_after: int) -> int:
        """Running workers whose `last_update` is older than `now - stall_after`."""
        # Seconds are whole: second < ceil(line) ⇔ second < line.
        line = math.ceil(now.timestamp() - stall_after)
        return sum(n for second, n in self.running_by_second.items() if second < line)


class Change(NamedTuple):
    """One stream record: a row's old image out, its new image in.

    `shard` is the stream shard it was read from: sequence numbers are ordered only
    within a shard. `sequence` must come from `sequence_key` so string order is numeric
    order.
    """

    shard: str
    sequence: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    approx_time: datetime


def sequence_key(sequence_number: str) -> str:
    """A stream sequence number zero-padded to 40 digits; ValueError if it is not one."""
    if not sequence_number.isascii() or not sequence_number.isdigit():
        raise ValueError(f"sequence number {sequence_number!r} is not digits")
    if len(sequence_number) > SEQUENCE_DIGITS:
        raise ValueError(f"sequence number {sequence_number!r} is longer than 40 digits")
    return sequence_number.zfill(SEQUENCE_DIGITS)


class _Tally:
    """Mutable working copy of the row-derived parts of a summary.

    One implementation of "a row enters / leaves" serves both the stream path and the
    recount, so the two can only agree.
    """

    def __init__(self, summary: Summary | None = None) -> None:
        base = summary or Summary.new("")
        self.counts = {
            "running": base.counts.running,
            "completed": base.counts.completed,
            "failed": base.counts.failed,
            "invalid": base.counts.invalid,
            "lost": base.counts.lost,
            "lost_interrupted": base.counts.lost_interrupted,
            "declared_total": base.counts.declared_total,
            "declaring": base.counts.declaring,
            "closed_total": base.counts.closed_total,
            "closing": base.counts.closing,
            "tasks_settled": base.counts.tasks_settled,
        }
        self.tasks = base.counts.tasks_completed
        self.by_second = dict(base.running_by_second)
        self.fold = base.stall_fold
        self.recent = list(base.recent)
        self.first = base.first_update_ms
        self.last = base.last_update_ms

    def move(self, parsed: Row | Invalid, sign: int) -> None:
        """Count a row in (`sign` 1) or out (-1)."""
        if isinstance(parsed, Invalid):
            self.counts["invalid"] += sign
            return
        self.counts[parsed.shown_status] += sign
        if parsed.lost_cause == "spot_interruption":
            self.counts["lost_interrupted"] += sign
        self.tasks += sign * parsed.tasks_completed
        ended = parsed.shown_status != "running"
        done, total = parsed.tasks_completed, parsed.tasks_total
        if total is not None:
            self.counts["declared_total"] += sign * total
            self.counts["declaring"] += sign
        elif ended:
            self.counts["closed_total"] += sign * done
            self.counts["closing"] += sign
        settled = max(done, total or 0) if ended else done
        self.counts["tasks_settled"] += sign * settled
        if parsed.shown_status == "running":
            second = parsed.second
            if self.fold is not None and second <= self.fold:
                second = self.fold
            left = self.by_second.get(second, 0) + sign
            if left:
                self.by_second[second] = left
            else:
                self.by_second.pop(second, None)
        if sign < 0:
            self.recent = [r for r in self.recent if r.task_index != parsed.task_index]
            return
        self.first = (
            parsed.last_update_ms if self.first is None else min(self.first, parsed.last_update_ms)
        )
        self.last = (
            parsed.last_update_ms if self.last is None else max(self.last, parsed.last_update_ms)
        )
        shown = parsed
        if parsed.message is not None and len(parsed.message) > MESSAGE_MAX:
            shown = replace(parsed, message=parsed.message[:MESSAGE_MAX])
        kept = [r for r in self.recent if r.task_index != parsed.task_index] + [shown]
        kept.sort(key=lambda r: (r.last_update_ms, r.task_index), reverse=True)
        self.recent = kept[:RECENT_ROWS]

    def apply_to(self, summary: Summary) -> Summary:
        return replace(
            summary,
            counts=Counts(**self.counts, tasks_completed=self.tasks),
            running_by_second=self.by_second,
            stall_fold=self.fold,
            recent=tuple(self.recent),
            first_update_ms=self.first,
            last_update_ms=self.last,
        )


def _sampled(
    samples: tuple[tuple[int, int], ...], second: int, finished: int
) -> tuple[tuple[int, int], ...]:
    """Add a completion sample: the newest stays open (replaced) until 30 s after the one
    before it, so samples are ≥ 30 s apart and the newest is always current."""
    if samples:
        second = max(second, samples[-1][0])
    kept = list(samples)
    if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < SAMPLE_EVERY_SECONDS:
        kept[-1] = (second, finished)
    else:
        kept.append((second, finished))
    return tuple(s for s in kept if s[0] >= second - RATE_WINDOW_SECONDS)


def apply_changes(summary: Summary, changes: Iterable[Change]) -> Summary:
    """Apply stream changes in order; each moves one worker between counts.

    A change whose sequence number is at or below its shard's watermark was applied
    already (Lambda retried the batch) and is skipped; so is one created before the last
    recount's Query began, which that recount already counted. Returns `summary` itself
    when nothing was applied.

    Watermarks are per shard because sequence numbers are ordered only within one:
    when an array's partition splits, Lambda reads the parent shard first and then the
    two children at once, whose numbers interleave. Within a shard a batch's records of
    one array are applied and saved together, so what was applied is always a prefix.
    """
    tally = _Tally(summary)
    watermarks = dict(summary.watermarks)
    samples = summary.samples
    task_samples = summary.task_samples
    moved = False
    advanced = False
    last_change_ms = summary.last_change_ms
    recount_again = summary.recount_again
    instances_gone = summary.instances_gone
    for change in changes:
        mark = watermarks.get(change.shard)
        if mark is not None and change.sequence <= mark.sequence:
            continue
        created_ms = epoch_ms(change.approx_time)
        seen_ms = created_ms if mark is None else max(mark.seen_ms, created_ms)
        watermarks[change.shard] = Watermark(change.sequence, seen_ms)
        advanced = True
        # ApproximateCreationDateTime is rounded down to the second: only a record a
        # whole second before the recount's Query is certainly in it.
        if summary.recounted_at_ms is not None and created_ms + 1000 <= summary.recounted_at_ms:
            continue
        if summary.recount_ended_ms is not None and created_ms <= summary.recount_ended_ms:
            recount_again = True
        if change.old is not None:
            tally.move(validate_row(change.old), -1)
        if change.new is not None:
            new = validate_row(change.new)
            tally.move(new, 1)
            # A worker reporting as running: the array has a live instance after all.
            if isinstance(new, Row) and new.shown_status == "running":
                instances_gone = False
        moved = True
        last_change_ms = max(last_change_ms or 0, created_ms)
        samples = _sampled(
            samples,
            created_ms // 1000,
            tally.counts["completed"] + tally.counts["failed"],
        )
        task_samples = _sampled(task_samples, created_ms // 1000, tally.counts["tasks_settled"])
    if not advanced:
        return summary
    newest = max(mark.seen_ms for mark in watermarks.values())
    watermarks = {
        shard: mark
        for shard, mark in watermarks.items()
        if mark.seen_ms >= newest - WATERMARK_KEEP_MS
    }
    updated = replace(
        summary,
        watermarks=watermarks,
        samples=samples,
        task_samples=task_samples,
        last_change_ms=last_change_ms,
        recount_again=recount_again,
    )
    if moved:
        updated = replace(
            tally.apply_to(updated),
            final_published=False,
            active=True,
            instances_gone=instances_gone,
        )
    return updated


def recount(rows: Iterable[Mapping[str, Any]]) -> Summary:
    """The row-derived parts of a summary (counts, running histogram, recent, first and
    last update) from every row of one array, as a Query returns them."""
    tally = _Tally()
    for image in rows:
        tally.move(validate_row(image), 1)
    return tally.apply_to(Summary.new(""))


def with_recount(
    summary: Summary, rows: Iterable[Mapping[str, Any]], started: datetime, ended: datetime
) -> Summary:
    """Replace the row-derived parts of `summary` with a recount of `rows`.

    `started` and `ended` bound the Query. `summary` must have been read before the
    Query began and be saved only if no other writer saved it since (its version), so no
    change applied during the Query is overwritten. Watermarks, samples and alert flags
    are kept; first and last update only ever widen (rows are overwritten, so the
    earliest update is history).
    """
    fresh = recount(rows)
    first = [t for t in (summary.first_update_ms, fresh.first_update_ms) if t is not None]
    last = [t for t in (summary.last_update_ms, fresh.last_update_ms) if t is not None]
    same = (
        fresh.counts == summary.counts
        and fresh.running_by_second == summary.running_by_second
        and fresh.recent == summary.recent
    )
    return replace(
        summary,
        counts=fresh.counts,
        running_by_second=fresh.running_by_second,
        stall_fold=None,
        recent=fresh.recent,
        first_update_ms=min(first) if first else None,
        last_update_ms=max(last) if last else None,
        recounted_at_ms=epoch_ms(started),
        recount_ended_ms=epoch_ms(ended),
        recount_again=False,
        final_published=summary.final_published and same,
    )


def fold_stalled(summary: Summary, now: datetime, stall_after: int) -> Summary:
    """Merge running workers stalled for good into one bucket, keeping the item small.

    A worker whose `last_update` second is at or before `now - stall_after - margin` is
    stalled for every later `now`, so where exactly it sits no longer matters.
    """
    fold = math.ceil(now.timestamp() - stall_after) - 1 - FOLD_MARGIN_SECONDS
    if summary.stall_fold is not None:
        fold = max(fold, summary.stall_fold)
    old = [s for s in summary.running_by_second if s < fold]
    if not old:
        return summary
    buckets = {s: n for s, n in summary.running_by_second.items() if s >= fold}
    folded = buckets.get(fold, 0) + sum(summary.running_by_second[s] for s in old)
    if folded:
        buckets[fold] = folded
    else:
        buckets.pop(fold, None)
    return replace(summary, running_by_second=buckets, stall_fold=fold)


def _eta_seconds(
    samples: tuple[tuple[int, int], ...], remaining: int, now: datetime, min_span: int
) -> int | None:
    """Seconds left at the rate `samples` show over the recent window, or None.

    The rate is the window's first sample to `now`: an average over up to 15 minutes of
    the whole array, so one slow worker (or a burst) moves it little.
    """
    if remaining <= 0:
        return 0
    now_s = now.timestamp()
    window = [s for s in samples if s[0] >= now_s - RATE_WINDOW_SECONDS]
    if len(window) < 2:
        return None
    (first_s, first_done), (last_s, last_done) = window[0], window[-1]
    if last_s - first_s < min_span or last_done <= first_done:
        return None
    # Measured up to now, not the last sample: progress that stopped slows the rate.
    elapsed = max(now_s, last_s) - first_s
    return math.ceil(remaining * elapsed / (last_done - first_done))


def tasks_view(counts: Counts, workers: int) -> dict[str, Any]:
    """The `tasks` object of a progress body, from the sums in `counts` (O(1)).

    `total` = Σ declared `tasks_total` + Σ `tasks_completed` of ended rows that declare
    none + the mean declared total x every other worker (not yet reported, invalid, or
    running without a total): `total_estimated` then. None when no row declares one.
    It is never below the tasks already settled (a row may claim more than its total).
    """
    declaring = max(0, counts.declaring)
    completed = max(0, counts.tasks_completed)
    if not declaring:
        return {"completed": completed, "total": None, "percent": None, "total_estimated": False}
    declared = max(0, counts.declared_total)
    closing = max(0, counts.closing)
    unknown = max(0, workers - declaring - closing)
    total = declared + max(0, counts.closed_total) + round(declared / declaring * unknown)
    total = max(total, completed, max(0, counts.tasks_settled))
    return {
        "completed": completed,
        "total": total,
        "percent": round(min(completed, total) / total * 100, 1) if total else None,
        "total_estimated": unknown > 0,
    }


def finished_at_ms(summary: Summary) -> int:
    """When a finished array finished: stored by the tick, else the latest change that
    can have finished it (a row's, or the check that found its instances gone), so the
    value is the same before and after the tick stores it."""
    if summary.finished_at_ms is not None:
        return summary.finished_at_ms
    candidates = [summary.last_change_ms]
    if summary.instances_gone:
        candidates.append(summary.gone_checked_ms)
    known = [t for t in candidates if t is not None] or [summary.last_update_ms or 0]
    return max(known)


def array_name(array_id: str, registered: str | None) -> str | None:
    """The array's name from its tags, else from spawn's id form `{name}-{YYYYMMDD}-{hex6}`."""
    if registered:
        return registered
    match = _ARRAY_ID_NAME.match(array_id)
    return match.group("name") if match else None


def progress_view(
    summary: Summary,
    registry_info: tuple[str | None, int | None] | None,
    now: datetime,
    stall_after: int,
    interruptions: int | None = None,
    cost: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The SPEC §7 `GET /arrays/{array_id}/progress` body.

    `percent_complete` and the ETA follow tasks when a task total is known
    (`progress_basis` `tasks`: settled tasks, those done and those ended workers will
    never do, over the total), workers otherwise. A finished array's body does not
    depend on `now` (no ETA; its duration ends at `finished_at`).

    Args:
        summary: the array's summary.
        registry_info: (name, declared size) from the instances' spawn tags, if known.
        now: the time `stalled` and the ETA are measured at.
        stall_after: `STALL_AFTER_SECONDS`.
        interruptions: this array's spot interruptions, if the caller read them.
        cost: the array's stored cost document (`chalicelib.cost.store`), if read.
    """
    name, size = registry_info or (None, None)
    counts = summary.counts
    running, completed, failed, lost, invalid = (
        max(0, n)
        for n in (counts.running, counts.completed, counts.failed, counts.lost, counts.invalid)
    )
    interrupted = min(lost, max(0, counts.lost_interrupted))
    reported = running + completed + failed + lost + invalid
    total = max(size or 0, reported)
    stalled = min(running, max(0, summary.stalled(now, stall_after)))
    over = completed + failed + lost
    tasks = tasks_view(counts, total)
    if tasks["total"]:
        basis = "tasks"
        settled = min(tasks["total"], max(0, counts.tasks_settled))
        percent = round(settled / tasks["total"] * 100, 1)
        eta_seconds = _eta_seconds(
            summary.task_samples, tasks["total"] - settled, now, TASK_ETA_MIN_SPAN_SECONDS
        )
    else:
        basis = "workers"
        percent = round(over / total * 100, 1) if total else 0.0
        eta_seconds = (
            _eta_seconds(summary.samples, total - over, now, ETA_MIN_SPAN_SECONDS)
            if total
            else None
        )
    # As `finished` reads the body.
    done = total > 0 and (over == total or (summary.instances_gone and running == 0))
    ended_ms = finished_at_ms(summary) if done else None
    if done:
        eta_seconds = None
    started_ms = summary.first_update_ms
    duration = None
    if started_ms is not None:
        end_ms = ended_ms if ended_ms is not None else epoch_ms(now)
        duration = max(0, (end_ms - started_ms) // 1000)
    return {
        "array_id": summary.array_id,
        "name": array_name(summary.array_id, name),
        "size": size,
        "workers": {
            "total": total,
            "pending": total - reported,
            "running": running,
            "completed": completed,
            "failed": failed,
            "lost": lost,
            "stalled": stalled,
            "invalid": invalid,
        },
        "lost_workers": {"spot_interruption": interrupted, "instance_ended": lost - interrupted},
        "instances_gone": summary.instances_gone,
        "tasks_completed": max(0, counts.tasks_completed),
        "tasks": tasks,
        "progress_basis": basis,
        "percent_complete": percent,
        "started_at": None if summary.first_update_ms is None else iso_ms(summary.first_update_ms),
        "updated_at": None if summary.last_update_ms is None else iso_ms(summary.last_update_ms),
        "finished_at": None if ended_ms is None else iso_ms(ended_ms),
        "duration_seconds": duration,
        "eta": None if eta_seconds is None else _eta_at(now, eta_seconds),
        "eta_seconds": eta_seconds,
        "interruptions": interruptions,
        "cost": cost_view(cost, eta_seconds, done, now),
        "recent": [row.to_json() for row in summary.recent],
    }


def _eta_at(now: datetime, seconds: int) -> str:
    """`now + seconds`, to the second (no microseconds)."""
    return iso((now + timedelta(seconds=seconds)).replace(microsecond=0))


def finished(view: Mapping[str, Any]) -> bool:
    """The array is over (SPEC §8): every worker completed, failed or was lost, none
    pending, running or invalid; or every instance of the array is gone and no worker is
    still counted running (those that never reported stay pending)."""
    workers = view["workers"]
    if workers["total"] <= 0:
        return False
    over = workers["completed"] + workers["failed"] + workers["lost"]
    return bool(over == workers["total"] or (view["instances_gone"] and workers["running"] == 0))


def alerts_due(
    summary: Summary, view: Mapping[str, Any], failed_alert_percent: float, now: datetime
) -> tuple[list[Alert], Summary]:
    """The SPEC §8 array alerts to send now, and the summary with their flags set.

    Finished and failing fire once per array; stalled fires once per episode and is
    re-armed when no worker is stalled any more.
    """
    workers = view["workers"]
    label = view["name"] or summary.array_id
    facts = {key: view[key] for key in view if key != "recent"}
    alerts: list[Alert] = []
    finished_alerted = summary.finished_alerted
    failing_alerted = summary.failing_alerted
    stalled_alerted = summary.stalled_alerted

    def alert(event_type: str, severity: str, subject: str) -> None:
        alerts.append(Alert(event_type, severity, subject, facts, summary.array_id, now))

    if finished(view) and not finished_alerted:
        never = f" ({workers['pending']} never reported)" if workers["pending"] else ""
        alert(
            "array_finished",
            "warning" if workers["failed"] or workers["lost"] or workers["pending"] else "info",
            f"Array {label} finished: {workers['completed']} completed, "
            f"{workers['failed']} failed, {workers['lost']} lost of {workers['total']}{never}",
        )
        finished_alerted = True
    failed_percent = workers["failed"] / workers["total"] * 100 if workers["total"] else 0.0
    if workers["failed"] > 0 and failed_percent >= failed_alert_percent and not failing_alerted:
        alert(
            "array_failing",
            "critical",
            f"Array {label} failing: {workers['failed']} of {workers['total']} workers "
            f"failed ({failed_percent:.1f} %)",
        )
        failing_alerted = True
    if workers["stalled"] > 0 and not stalled_alerted:
        alert(
            "workers_stalled",
            "warning",
            f"Array {label}: {workers['stalled']} workers stalled",
        )
        stalled_alerted = True
    elif workers["stalled"] == 0:
        stalled_alerted = False
    flagged = replace(
        summary,
        finished_alerted=finished_alerted,
        failing_alerted=failing_alerted,
        stalled_alerted=stalled_alerted,
    )
    return alerts, summary if flagged == summary else flagged
