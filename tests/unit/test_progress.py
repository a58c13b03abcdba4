"""The pure progress core: rows → summaries → the SPEC §7 view and §8 alerts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.contract.rows import (
    ARRAY_ID_MAX,
    HOSTNAME_MAX,
    INSTANCE_ID_MAX,
    LOST_CAUSES,
    Invalid,
    Row,
    validate_row,
)
from chalicelib.progress.summary import (
    Change,
    Summary,
    Watermark,
    alerts_due,
    apply_changes,
    finished,
    fold_stalled,
    progress_view,
    recount,
    sequence_key,
    with_recount,
)
from tests.conftest import load_event

ARRAY = "render-20260127-a1b2c3"
T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
STALL = 600
_sequence = itertools.count(100)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def row(index: int, status: str = "running", tasks: int = 0, at: datetime = T0, **extra: Any):
    """A row as TypeDeserializer gives it (numbers are Decimal)."""
    image: dict[str, Any] = {
        "array_id": ARRAY,
        "task_index": Decimal(index),
        "status": status,
        "tasks_completed": Decimal(tasks),
        "last_update": stamp(at),
        "instance_id": f"i-{index:017x}",
        "hostname": f"ip-10-0-0-{index}",
    }
    image.update(extra)
    return image


def change(
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    at: datetime = T0,
    shard: str = "stream-1",
    sequence: int | None = None,
) -> Change:
    number = next(_sequence) if sequence is None else sequence
    return Change(shard, sequence_key(str(number)), old, new, at)


def fresh() -> Summary:
    return Summary.new(ARRAY)


def view(summary: Summary, size: int | None = None, now: datetime = T0) -> dict[str, Any]:
    return progress_view(summary, (None, size) if size is not None else None, now, STALL)


# --- validation -------------------------------------------------------------------------


def test_a_valid_row_keeps_every_field() -> None:
    parsed = validate_row(
        row(3, "completed", 7, tasks_total=Decimal(10), error_count=Decimal(1), message="ok")
    )
    assert parsed == Row(
        array_id=ARRAY,
        task_index=3,
        status="completed",
        tasks_completed=7,
        last_update_ms=int(T0.timestamp() * 1000),
        instance_id="i-00000000000000003",
        hostname="ip-10-0-0-3",
        tasks_total=10,
        error_count=1,
        message="ok",
    )


@pytest.mark.parametrize(
    "text", ["2026-01-27T10:00:00Z", "2026-01-27T10:00:00+00:00", "2026-01-27T10:00:00.000Z"]
)
def test_utc_times_with_z_or_zero_offset_are_accepted(text: str) -> None:
    parsed = validate_row(row(0, last_update=text))
    assert isinstance(parsed, Row)
    assert parsed.last_update_ms == int(T0.timestamp() * 1000)


GARBAGE: list[tuple[str, Any]] = [
    ("not a map", ["status", "running"]),
    ("none", None),
    ("empty", {}),
    ("no array id", {k: v for k, v in row(0).items() if k != "array_id"}),
    ("array id not text", row(0, array_id=Decimal(5))),
    ("negative index", row(0, task_index=Decimal(-1))),
    ("fractional index", row(0, task_index=Decimal("1.5"))),
    ("no status", {k: v for k, v in row(0).items() if k != "status"}),
    ("unknown status", row(0, "done")),
    ("status is a list", row(0, ["running"])),
    ("status is a set", row(0, {"running"})),
    ("status wrong case", row(0, "Running")),
    ("tasks negative", row(0, tasks=-1)),
    ("tasks text", row(0, tasks_completed="5")),
    ("tasks fractional", row(0, tasks_completed=Decimal("2.5"))),
    ("tasks bool", row(0, tasks_completed=True)),
    ("tasks nan", row(0, tasks_completed=Decimal("NaN"))),
    ("tasks signalling nan", row(0, tasks_completed=Decimal("sNaN"))),
    ("tasks huge", row(0, tasks_completed=Decimal("1E+40"))),
    ("tasks missing", {k: v for k, v in row(0).items() if k != "tasks_completed"}),
    ("time words", row(0, last_update="yesterday")),
    ("time naive", row(0, last_update="2026-01-27T10:00:00")),
    ("time other zone", row(0, last_update="2026-01-27T12:00:00+02:00")),
    ("time epoch number", row(0, last_update=Decimal(1769508000))),
    ("time huge text", row(0, last_update="2026-01-27T10:00:00Z" + " " * 100)),
    ("no instance", {k: v for k, v in row(0).items() if k != "instance_id"}),
    ("empty hostname", row(0, hostname="")),
    ("hostname bytes", row(0, hostname=b"host")),
    ("total negative", row(0, tasks_total=Decimal(-3))),
    ("errors text", row(0, error_count="x")),
    ("message number", row(0, message=Decimal(5))),
]


@pytest.mark.parametrize(("label", "image"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_is_invalid_with_a_reason_never_an_exception(label: str, image: Any) -> None:
    parsed = validate_row(image)
    assert isinstance(parsed, Invalid), label
    assert parsed.reason


@pytest.mark.parametrize(
    ("field", "longest"),
    [("hostname", HOSTNAME_MAX), ("instance_id", INSTANCE_ID_MAX), ("array_id", ARRAY_ID_MAX)],
)
def test_texts_longer_than_their_limit_make_the_row_invalid(field: str, longest: int) -> None:
    assert isinstance(validate_row(row(0, **{field: "x" * longest})), Row)
    parsed = validate_row(row(0, **{field: "x" * (longest + 1)}))
    assert isinstance(parsed, Invalid)
    assert parsed.reason == f"{field} is {longest + 1} characters, more than {longest}"


def test_optional_fields_may_be_null() -> None:
    assert isinstance(validate_row(row(0, tasks_total=None, message=None)), Row)


# --- transitions ------------------------------------------------------------------------


def test_insert_modify_remove_move_one_worker_at_a_time() -> None:
    running = row(1, "running", 2)
    summary = apply_changes(fresh(), [change(None, running)])
    assert (summary.counts.running, summary.counts.tasks_completed) == (1, 2)

    completed = row(1, "completed", 5, at=T0 + timedelta(seconds=30))
    summary = apply_changes(summary, [change(running, completed)])
    assert summary.counts.running == 0
    assert summary.counts.completed == 1
    assert summary.counts.tasks_completed == 5
    assert summary.running_by_second == {}

    summary = apply_changes(summary, [change(completed, None)])
    assert summary.counts.reported == 0
    assert summary.counts.tasks_completed == 0


def test_a_status_change_moves_exactly_one_worker() -> None:
    rows = [row(i, "running", 1) for i in range(10)]
    summary = apply_changes(fresh(), [change(None, r) for r in rows])
    failed = row(4, "failed", 1)
    summary = apply_changes(summary, [change(rows[4], failed)])
    assert (summary.counts.running, summary.counts.failed, summary.counts.completed) == (9, 1, 0)


def test_invalid_rows_count_only_as_invalid_and_hide_nothing() -> None:
    good = row(0, "completed", 3)
    bad = row(1, "exploded", 99)
    summary = apply_changes(fresh(), [change(None, good), change(None, bad)])
    assert summary.counts.invalid == 1
    assert summary.counts.completed == 1
    assert summary.counts.tasks_completed == 3
    body = view(summary, size=2)
    assert body["workers"] == {
        "total": 2,
        "pending": 0,
        "running": 0,
        "completed": 1,
        "failed": 0,
        "lost": 0,
        "stalled": 0,
        "invalid": 1,
    }
    # The worker fixes its row: out of invalid, into running.
    fixed = row(1, "running", 4)
    summary = apply_changes(summary, [change(bad, fixed)])
    assert (summary.counts.invalid, summary.counts.running) == (0, 1)
    assert summary.counts.tasks_completed == 7


def test_a_replayed_batch_is_skipped_by_the_watermark() -> None:
    batch = [change(None, row(i)) for i in range(3)]
    once = apply_changes(fresh(), batch)
    assert apply_changes(once, batch) is once
    # A retry that replays part of the batch and brings one new record applies only that.
    newer = change(row(0), row(0, "completed"))
    again = apply_changes(once, [*batch[1:], newer])
    assert (again.counts.running, again.counts.completed) == (2, 1)


def test_watermarks_are_kept_per_shard() -> None:
    first = apply_changes(fresh(), [change(None, row(0), shard="a", sequence=500)])
    second = apply_changes(first, [change(None, row(1), shard="b", sequence=10)])
    assert second.counts.running == 2
    ms = int(T0.timestamp() * 1000)
    assert second.watermarks == {
        "a": Watermark(sequence_key("500"), ms),
        "b": Watermark(sequence_key("10"), ms),
    }


def test_watermarks_of_shards_silent_past_the_streams_retention_are_dropped() -> None:
    summary = fresh()
    for hour in range(72):  # a new shard every hour for three days
        at = T0 + timedelta(hours=hour)
        summary = apply_changes(summary, [change(None, row(hour), at=at, shard=f"s{hour}")])
    # Only the shards whose newest record is within 25 h of the newest are kept.
    assert sorted(summary.watermarks) == sorted(f"s{hour}" for hour in range(46, 72))
    assert summary.counts.running == 72


def test_sequence_keys_compare_as_numbers() -> None:
    assert sequence_key("9") < sequence_key("10")
    assert len(sequence_key("1")) == 40
    for bad in ("", "12a", "-1", "1" * 41, "١٢"):
        with pytest.raises(ValueError, match="sequence number"):
            sequence_key(bad)


def test_recent_keeps_the_five_latest_valid_rows() -> None:
    changes = [change(None, row(i, at=T0 + timedelta(seconds=i))) for i in range(8)]
    changes.append(change(None, row(99, "bogus", at=T0 + timedelta(hours=1))))
    summary = apply_changes(fresh(), changes)
    assert [r.task_index for r in summary.recent] == [7, 6, 5, 4, 3]
    # A row that updates replaces its old entry rather than appearing twice.
    summary = apply_changes(
        summary, [change(row(3, at=T0 + timedelta(seconds=3)), row(3, at=T0 + timedelta(1)))]
    )
    assert [r.task_index for r in summary.recent] == [3, 7, 6, 5, 4]
    assert view(summary)["recent"][0]["last_update"] == "2026-01-28T10:00:00Z"


def test_long_messages_are_cut_in_recent() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, message="x" * 5000))])
    assert len(summary.recent[0].message or "") == 500


# --- stalled ----------------------------------------------------------------------------


def test_stalled_is_exact_to_the_second() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, at=T0)), change(None, row(1, "failed"))])
    line = T0 + timedelta(seconds=STALL)
    assert view(summary, now=line)["workers"]["stalled"] == 0  # exactly 600 s: not older
    assert view(summary, now=line + timedelta(milliseconds=1))["workers"]["stalled"] == 1
    assert view(summary, now=line + timedelta(seconds=1))["workers"]["stalled"] == 1
    assert view(summary, now=line - timedelta(seconds=1))["workers"]["stalled"] == 0


def test_a_stalled_worker_that_reports_again_is_no_longer_stalled() -> None:
    old = row(0, at=T0)
    summary = apply_changes(fresh(), [change(None, old)])
    later = T0 + timedelta(seconds=STALL + 5)
    assert view(summary, now=later)["workers"]["stalled"] == 1
    summary = apply_changes(summary, [change(old, row(0, at=later))])
    assert view(summary, now=later)["workers"]["stalled"] == 0


def test_folding_stalled_buckets_changes_no_count() -> None:
    rows = [row(i, at=T0 + timedelta(seconds=7 * i)) for i in range(200)]
    summary = apply_changes(fresh(), [change(None, r) for r in rows])
    now = T0 + timedelta(seconds=1000)
    folded = fold_stalled(summary, now, STALL)
    assert len(folded.running_by_second) < len(summary.running_by_second)
    for seconds in range(0, 3000, 13):
        moment = now + timedelta(seconds=seconds)
        assert view(folded, now=moment)["workers"] == view(summary, now=moment)["workers"]
    # A folded worker that finishes still leaves the histogram exactly.
    done = apply_changes(folded, [change(rows[0], row(0, "completed"))])
    assert sum(done.running_by_second.values()) == 199


# --- the view ---------------------------------------------------------------------------


def test_pending_comes_from_the_declared_size() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(3)])
    assert view(summary, size=10)["workers"]["pending"] == 7
    assert view(summary, size=10)["workers"]["total"] == 10
    assert view(summary)["workers"]["total"] == 3  # size unknown: what reported
    assert view(summary, size=2)["workers"]["total"] == 3  # more reported than declared


def test_percent_complete_counts_completed_and_failed() -> None:
    summary = apply_changes(
        fresh(), [change(None, row(0, "completed")), change(None, row(1, "failed"))]
    )
    assert view(summary, size=3)["percent_complete"] == 66.7
    assert view(summary, size=6)["percent_complete"] == 33.3
    assert view(fresh())["percent_complete"] == 0


def test_the_view_has_exactly_the_spec_fields() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, at=T0))])
    body = progress_view(summary, ("render", 4), T0 + timedelta(seconds=5), STALL)
    # SPEC §7's fields, and how the lost workers were lost and whether the instances are.
    assert set(body) == {
        "lost_workers",
        "instances_gone",
        "array_id",
        "name",
        "size",
        "workers",
        "tasks_completed",
        "tasks",
        "progress_basis",
        "percent_complete",
        "started_at",
        "updated_at",
        "finished_at",
        "duration_seconds",
        "eta",
        "eta_seconds",
        "interruptions",
        "cost",
        "recent",
    }
    assert body["name"] == "render"
    assert body["started_at"] == body["updated_at"] == "2026-01-27T10:00:00Z"
    assert set(body["recent"][0]) >= {"task_index", "status", "last_update", "hostname"}


def test_name_falls_back_to_spawns_array_id_form() -> None:
    assert view(fresh())["name"] == "render"
    other = Summary.new("adhoc")
    assert progress_view(other, None, T0, STALL)["name"] is None


def complete(summary: Summary, index: int, at: datetime) -> Summary:
    return apply_changes(summary, [change(row(index), row(index, "completed"), at=at)])


def test_eta_is_null_until_there_is_enough_signal_then_estimated() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(100)])
    assert view(summary, size=100)["eta"] is None  # no progress yet
    summary = complete(summary, 0, T0 + timedelta(seconds=20))
    assert view(summary, size=100, now=T0 + timedelta(seconds=20))["eta"] is None  # < 60 s
    for i in range(1, 10):
        summary = complete(summary, i, T0 + timedelta(seconds=120))
    now = T0 + timedelta(seconds=120)
    body = view(summary, size=100, now=now)
    # 10 finished in 120 s; 90 left → 1080 s.
    assert body["eta_seconds"] == 1080
    assert body["eta"] == "2026-01-27T10:20:00Z"
    # No progress for a while: the rate measured up to now slows the estimate.
    assert view(summary, size=100, now=now + timedelta(seconds=120))["eta_seconds"] == 2160


def test_eta_forgets_progress_older_than_the_window() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(10)])
    summary = complete(summary, 0, T0 + timedelta(seconds=100))
    assert view(summary, size=10, now=T0 + timedelta(hours=2))["eta"] is None


def test_a_finished_array_has_no_eta_and_a_finished_at() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, "completed"))])
    body = view(summary, size=1)
    assert (body["eta"], body["eta_seconds"]) == (None, None)
    assert body["finished_at"] == "2026-01-27T10:00:00Z"


def test_finished_needs_every_worker_completed_or_failed() -> None:
    done = apply_changes(
        fresh(), [change(None, row(0, "completed")), change(None, row(1, "failed"))]
    )
    assert finished(view(done, size=2))
    assert not finished(view(done, size=3))  # one pending
    assert not finished(view(fresh()))  # nothing at all
    with_bad = apply_changes(done, [change(None, row(2, "zzz"))])
    assert not finished(view(with_bad))


# --- lost workers -----------------------------------------------------------------------


def lost(index: int, cause: str = "instance_ended", **extra: Any) -> dict[str, Any]:
    """A running row the backend marked lost (its instance ended)."""
    image = row(index, **extra)
    return {**image, "lost_instance_id": image["instance_id"], "lost_cause": cause}


def test_a_marked_running_row_is_lost_apart_from_running_with_its_cause() -> None:
    summary = apply_changes(fresh(), [change(None, row(i, at=T0)) for i in range(4)])
    summary = apply_changes(
        summary,
        [
            change(row(1), lost(1, "spot_interruption")),
            change(row(2), lost(2)),
            # A mark naming another instance: the task moved on; the row is running.
            change(
                row(3), {**row(3), "lost_instance_id": "i-0fff", "lost_cause": "instance_ended"}
            ),
        ],
    )
    body = view(summary, size=4, now=T0 + timedelta(seconds=STALL + 1))
    assert body["workers"] == {
        "total": 4,
        "pending": 0,
        "running": 2,
        "completed": 0,
        "failed": 0,
        "lost": 2,
        "stalled": 2,  # the two lost workers are not stalled: they are lost
        "invalid": 0,
    }
    assert body["lost_workers"] == {"spot_interruption": 1, "instance_ended": 1}
    assert body["percent_complete"] == 50.0
    assert [r["status"] for r in body["recent"]] == ["running", "lost", "lost", "running"]
    # The worker's next write (a PutItem) carries no mark: it counts as it says again.
    summary = apply_changes(summary, [change(lost(2), row(2, "completed"))])
    assert (summary.counts.lost, summary.counts.completed) == (1, 1)


def test_a_mark_on_a_row_that_is_not_running_changes_nothing() -> None:
    done = {**lost(0), "status": "completed"}
    parsed = validate_row(done)
    assert isinstance(parsed, Row)
    assert (parsed.status, parsed.lost_cause) == ("completed", None)


def test_an_array_is_over_when_every_worker_is_done_or_lost() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, "completed")), change(None, lost(1))])
    assert finished(view(summary, size=2))
    assert not finished(view(summary, size=3))  # one never reported ...
    gone = replace(summary, instances_gone=True)
    assert finished(view(gone, size=3))  # ... but every instance is gone
    # Gone, yet a row still counted running (its mark is on the way): not yet.
    stranded = replace(apply_changes(summary, [change(None, row(2))]), instances_gone=True)
    assert not finished(view(stranded, size=4))
    # A worker reporting as running means an instance is there after all.
    assert not apply_changes(gone, [change(None, row(5))]).instances_gone


def test_a_10000_worker_array_all_lost_keeps_a_small_summary() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(10_000)])
    summary = apply_changes(summary, [change(row(i), lost(i)) for i in range(10_000)])
    assert (summary.counts.running, summary.counts.lost) == (0, 10_000)
    assert dict(summary.running_by_second) == {}
    assert len(summary.recent) == 5


# --- alerts -----------------------------------------------------------------------------


def test_finished_alert_fires_once() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, "completed"))])
    alerts, flagged = alerts_due(summary, view(summary, size=1), 10.0, T0)
    assert [a.event_type for a in alerts] == ["array_finished"]
    assert alerts[0].array_id == ARRAY
    assert flagged.finished_alerted
    assert alerts_due(flagged, view(flagged, size=1), 10.0, T0)[0] == []


def test_failing_alert_at_the_threshold_once() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(20)])
    summary = apply_changes(summary, [change(row(0), row(0, "failed"))])
    assert alerts_due(summary, view(summary, size=20), 10.0, T0)[0] == []  # 5 %
    summary = apply_changes(summary, [change(row(1), row(1, "failed"))])
    alerts, flagged = alerts_due(summary, view(summary, size=20), 10.0, T0)  # 10 %
    assert [(a.event_type, a.severity) for a in alerts] == [("array_failing", "critical")]
    assert alerts_due(flagged, view(flagged, size=20), 10.0, T0)[0] == []


def test_stalled_alert_fires_once_per_episode() -> None:
    summary = apply_changes(fresh(), [change(None, row(0, at=T0))])
    late = T0 + timedelta(seconds=STALL + 1)
    alerts, summary = alerts_due(summary, view(summary, now=late), 10.0, late)
    assert [a.event_type for a in alerts] == ["workers_stalled"]
    assert alerts_due(summary, view(summary, now=late), 10.0, late)[0] == []
    summary = apply_changes(summary, [change(row(0, at=T0), row(0, at=late))])
    alerts, summary = alerts_due(summary, view(summary, now=late), 10.0, late)
    assert alerts == []
    assert not summary.stalled_alerted  # re-armed
    later = late + timedelta(seconds=STALL + 1)
    assert [
        a.event_type for a in alerts_due(summary, view(summary, now=later), 10.0, later)[0]
    ] == ["workers_stalled"]


# --- recount ----------------------------------------------------------------------------


def test_with_recount_replaces_counts_and_keeps_watermarks_flags_and_samples() -> None:
    summary = apply_changes(fresh(), [change(None, row(i)) for i in range(3)])
    summary = replace(summary, finished_alerted=True, version=4)
    rows = [row(0, "completed", 2), row(1, "running"), row(5, "bad")]
    later = T0 + timedelta(minutes=5)
    counted = with_recount(summary, rows, later, later)
    assert (counted.counts.running, counted.counts.completed, counted.counts.invalid) == (1, 1, 1)
    assert counted.counts.tasks_completed == 2
    assert counted.watermarks == summary.watermarks
    assert counted.samples == summary.samples
    assert counted.finished_alerted
    assert counted.version == 4
    assert counted.recounted_at_ms == int(later.timestamp() * 1000)


def test_a_record_created_during_the_recounts_query_asks_for_another_recount() -> None:
    start = T0 + timedelta(minutes=5)
    counted = with_recount(fresh(), [row(0)], start, start + timedelta(seconds=2))
    during = change(row(0), row(0, "completed"), at=start + timedelta(seconds=1))
    after = change(row(0), row(0, "completed"), at=start + timedelta(seconds=3))
    assert apply_changes(counted, [during]).recount_again
    assert not apply_changes(counted, [after]).recount_again
    assert not with_recount(apply_changes(counted, [during]), [], start, start).recount_again


def test_records_older_than_the_recount_are_not_counted_again() -> None:
    start = T0 + timedelta(minutes=5)
    counted = with_recount(fresh(), [row(0, "completed")], start, start)
    # Created a whole second before the recount's Query: already in it.
    stale = change(row(0), row(0, "completed"), at=start - timedelta(seconds=2))
    fresh_change = change(None, row(1), at=start)
    summary = apply_changes(counted, [stale, fresh_change])
    assert (summary.counts.completed, summary.counts.running) == (1, 1)


# --- property: incremental == recount ---------------------------------------------------

# A declared task total: none, a count, or garbage (the row is then invalid).
task_totals = st.one_of(
    st.just({}),
    st.builds(lambda n: {"tasks_total": Decimal(n)}, st.integers(0, 60)),
    st.just({"tasks_total": Decimal(-1)}),
)
# The backend's lost mark: for this row's instance or another, with a cause or garbage.
lost_marks = st.one_of(
    st.just({}),
    st.builds(
        lambda instance, cause: {"lost_instance_id": instance, "lost_cause": cause},
        st.sampled_from(["i-0123456789abcdef0", "i-0fffffffffffffff0"]),
        st.sampled_from([*LOST_CAUSES, "bogus"]),
    ),
)
images = st.one_of(
    st.builds(
        lambda status, tasks, seconds, mark, total: {
            "status": status,
            "tasks_completed": Decimal(tasks),
            "last_update": stamp(T0 + timedelta(seconds=seconds)),
            **mark,
            **total,
        },
        st.sampled_from(["running", "completed", "failed"]),
        st.integers(0, 50),
        st.integers(0, 2000),
        lost_marks,
        task_totals,
    ),
    st.fixed_dictionaries(
        {
            "status": st.one_of(st.none(), st.integers(), st.text(max_size=3)),
            "tasks_completed": st.one_of(st.decimals(allow_nan=True), st.text(max_size=2)),
            "last_update": st.one_of(st.text(max_size=5), st.just("2026-01-27T10:00:00")),
        }
    ),
)
operations = st.lists(
    st.tuples(st.integers(0, 5), st.one_of(st.none(), images)), min_size=1, max_size=40
)


def _changes(ops: list[tuple[int, dict[str, Any] | None]]) -> Iterator[tuple[Change, dict]]:
    rows: dict[int, dict[str, Any]] = {}
    at = T0
    for index, body in ops:
        at += timedelta(seconds=17)
        old = rows.get(index)
        if body is None:
            if old is None:
                continue
            del rows[index]
            yield change(old, None, at=at), dict(rows)
            continue
        new = {
            "array_id": ARRAY,
            "task_index": Decimal(index),
            "instance_id": "i-0123456789abcdef0",
            "hostname": "h",
            **body,
        }
        rows[index] = new
        yield change(old, new, at=at), dict(rows)


@settings(max_examples=200, deadline=None)
@given(operations, st.lists(st.integers(1, 5), min_size=1, max_size=10), st.booleans())
def test_incremental_summary_equals_a_recount_of_the_final_rows(
    ops: list[tuple[int, dict[str, Any] | None]], cuts: list[int], replay: bool
) -> None:
    steps = list(_changes(ops))
    changes = [c for c, _ in steps]
    final_rows = steps[-1][1] if steps else {}
    summary = fresh()
    position, previous = 0, []
    for size in itertools.cycle(cuts):
        if position >= len(changes):
            break
        batch = changes[position : position + size]
        # Lambda retrying a batch replays what was applied before it.
        summary = apply_changes(summary, [*previous, *batch] if replay else batch)
        position, previous = position + size, batch
    truth = recount(final_rows.values())
    assert summary.counts == truth.counts
    assert dict(summary.running_by_second) == dict(truth.running_by_second)
    current = [validate_row(r) for r in final_rows.values()]
    assert all(r in current for r in summary.recent)
    keys = [(r.last_update_ms, r.task_index) for r in summary.recent]
    assert keys == sorted(keys, reverse=True)


# --- the row contract shared with the workers' kit ----------------------------------------


def test_the_shared_sample_rows_classify_as_the_workers_kit_does() -> None:
    """The same rows as tests/unit/kit/test_rows.py, here as the stream delivers them."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    samples = load_event("progress-rows.json")
    serializer, deserializer = TypeSerializer(), TypeDeserializer()

    def as_streamed(image: dict[str, Any]) -> dict[str, Any]:
        return {k: deserializer.deserialize(serializer.serialize(v)) for k, v in image.items()}

    assert all(isinstance(validate_row(as_streamed(r)), Row) for r in samples["valid"])
    assert all(isinstance(validate_row(as_streamed(r)), Invalid) for r in samples["invalid"])
    counts = recount(as_streamed(r) for r in samples["valid"] + samples["invalid"]).counts
    assert (counts.running, counts.completed, counts.failed) == (1, 1, 1)
    assert counts.invalid == len(samples["invalid"])
