"""Progress in tasks: the task sums the summary keeps, the `tasks` view, basis, ETA,
finished_at and duration (SPEC §7)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.progress.store import from_item, to_item
from chalicelib.progress.summary import (
    Change,
    Summary,
    apply_changes,
    progress_view,
    recount,
    sequence_key,
)

ARRAY = "render-20260127-a1b2c3"
T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
STALL = 600
_sequence = itertools.count(100)


def row(index: int, status: str = "running", done: int = 0, total: int | None = 100) -> dict:
    image: dict[str, Any] = {
        "array_id": ARRAY,
        "task_index": Decimal(index),
        "status": status,
        "tasks_completed": Decimal(done),
        "last_update": "2026-01-27T10:00:00Z",
        "instance_id": f"i-{index:017x}",
        "hostname": "h",
    }
    if total is not None:
        image["tasks_total"] = Decimal(total)
    return image


def change(old: dict | None, new: dict | None, at: datetime = T0) -> Change:
    return Change("s", sequence_key(str(next(_sequence))), old, new, at)


def view(summary: Summary, size: int | None = 4, now: datetime = T0, **kw: Any) -> dict:
    return progress_view(summary, (None, size), now, STALL, **kw)


def test_one_worker_at_40_of_100_in_an_array_of_4_reads_10_percent_in_tasks() -> None:
    summary = apply_changes(Summary.new(ARRAY), [change(None, row(0, done=40))])
    body = view(summary)
    assert body["tasks"] == {
        "completed": 40,
        "total": 400,
        "percent": 10.0,
        "total_estimated": True,
    }
    assert (body["percent_complete"], body["progress_basis"]) == (10.0, "tasks")
    everyone = apply_changes(summary, [change(None, row(i)) for i in (1, 2, 3)])
    assert view(everyone)["tasks"]["total_estimated"] is False
    assert view(everyone)["tasks"]["total"] == 400


def test_without_any_declared_total_progress_follows_workers() -> None:
    summary = apply_changes(
        Summary.new(ARRAY),
        [change(None, row(0, "completed", 7, None)), change(None, row(1, "running", 3, None))],
    )
    body = view(summary)
    assert body["tasks"] == {
        "completed": 10,
        "total": None,
        "percent": None,
        "total_estimated": False,
    }
    assert (body["percent_complete"], body["progress_basis"]) == (25.0, "workers")


def test_rows_without_a_total_are_estimated_and_ended_ones_count_what_they_did() -> None:
    summary = apply_changes(
        Summary.new(ARRAY),
        [
            change(None, row(0, "running", 10, 100)),
            change(None, row(1, "completed", 30, None)),  # ended: its share is 30
            change(None, row(2, "running", 5, None)),  # running, no total: estimated
            change(None, {"array_id": ARRAY, "task_index": Decimal(3), "status": "??"}),
        ],
    )
    tasks = view(summary)["tasks"]
    # 100 declared + 30 ended + mean 100 x (row 2 and the invalid row 3).
    assert tasks["total"] == 330
    assert tasks["total_estimated"] is True
    assert tasks["completed"] == 45


def test_failed_and_lost_workers_settle_their_whole_share_so_a_finished_array_is_100() -> None:
    lost = {
        **row(1, "running", 20),
        "lost_instance_id": "i-00000000000000001",
        "lost_cause": "instance_ended",
    }
    summary = apply_changes(
        Summary.new(ARRAY),
        [change(None, row(0, "completed", 100)), change(None, lost)],
    )
    body = view(summary, size=2)
    assert body["tasks"]["percent"] == 60.0  # tasks actually done
    assert body["percent_complete"] == 100.0  # nothing is left to do
    assert body["finished_at"] is not None
    assert body["eta"] is None


def test_a_row_claiming_more_than_its_total_never_reads_over_100() -> None:
    summary = apply_changes(Summary.new(ARRAY), [change(None, row(0, "running", 150, 100))])
    body = view(summary, size=1)
    assert body["tasks"]["total"] == 150
    assert body["tasks"]["percent"] == 100.0
    assert body["percent_complete"] <= 100


def test_size_unknown_counts_only_the_workers_that_reported() -> None:
    summary = apply_changes(Summary.new(ARRAY), [change(None, row(0, done=40))])
    assert view(summary, size=None)["tasks"] == {
        "completed": 40,
        "total": 100,
        "percent": 40.0,
        "total_estimated": False,
    }


def test_the_task_eta_comes_after_two_observations_and_follows_the_task_rate() -> None:
    summary = apply_changes(Summary.new(ARRAY), [change(None, row(0, done=20))])
    assert view(summary)["eta"] is None  # one observation
    later = T0 + timedelta(seconds=2)
    summary = apply_changes(summary, [change(row(0, done=20), row(0, done=40), at=later)])
    body = view(summary, now=later)
    # 20 tasks in 2 s; 360 left → 36 s.
    assert body["eta_seconds"] == 36
    assert body["eta"] == "2026-01-27T10:00:38Z"


def test_one_slow_worker_does_not_swing_the_task_eta() -> None:
    summary = Summary.new(ARRAY)
    images = {i: row(i) for i in range(4)}
    for i in range(4):
        summary = apply_changes(summary, [change(None, images[i])])
    at = T0
    for step in range(1, 11):  # three workers do 5 tasks every 30 s, one stays at 0
        at = T0 + timedelta(seconds=30 * step)
        for i in range(3):
            new = row(i, done=5 * step)
            summary = apply_changes(summary, [change(images[i], new, at=at)])
            images[i] = new
    steady = view(summary, now=at)["eta_seconds"]
    new = row(3, done=1)
    bumped = apply_changes(summary, [change(images[3], new, at=at)])
    assert steady is not None
    assert abs(view(bumped, now=at)["eta_seconds"] - steady) / steady < 0.02


def test_a_finished_arrays_body_does_not_depend_on_the_time_of_the_read() -> None:
    summary = apply_changes(
        Summary.new(ARRAY),
        [change(None, row(i, "running", 50)) for i in range(2)]
        + [
            change(row(i, "running", 50), row(i, "completed", 100), at=T0 + timedelta(minutes=5))
            for i in range(2)
        ],
    )
    first = view(summary, size=2, now=T0 + timedelta(minutes=6, microseconds=123))
    second = view(summary, size=2, now=T0 + timedelta(minutes=6, seconds=1))
    assert json.dumps(first) == json.dumps(second)
    assert first["finished_at"] == "2026-01-27T10:05:00Z"
    assert first["duration_seconds"] == 300
    running = apply_changes(Summary.new(ARRAY), [change(None, row(0))])
    assert view(running, now=T0 + timedelta(seconds=90))["duration_seconds"] == 90
    assert view(running)["finished_at"] is None


def test_interruptions_are_passed_through() -> None:
    assert view(Summary.new(ARRAY), interruptions=3)["interruptions"] == 3


def test_task_sums_and_samples_survive_the_item() -> None:
    summary = apply_changes(Summary.new(ARRAY), [change(None, row(0, "failed", 4, 9))])
    again = from_item(to_item(summary))
    assert again.counts == summary.counts
    assert again.task_samples == summary.task_samples


statuses = st.sampled_from(["running", "completed", "failed"])
bodies = st.one_of(
    st.none(),
    st.tuples(statuses, st.integers(0, 120), st.one_of(st.none(), st.integers(0, 100))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), bodies), min_size=1, max_size=40), st.randoms())
def test_task_sums_moved_in_any_order_agree_with_a_recount(ops: list, rnd: Any) -> None:
    rows: dict[int, dict] = {}
    changes = []
    for index, body in ops:
        old = rows.pop(index, None)
        new = None if body is None else row(index, body[0], body[1], body[2])
        if new is not None:
            rows[index] = new
        if old is not None or new is not None:
            changes.append(change(old, new))
    # Moves commute: applied in any order, the sums end where the final rows put them.
    rnd.shuffle(changes)
    changes = [c._replace(sequence=sequence_key(str(next(_sequence)))) for c in changes]
    summary = apply_changes(Summary.new(ARRAY), changes)
    truth = recount(rows.values())
    assert summary.counts == truth.counts
    assert view(summary)["tasks"] == view(truth)["tasks"]
