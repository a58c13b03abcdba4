"""Progress totals → the fleet counters' increments: exact, never negative, kept across
processes, and not lost by sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spawn_report import Identity, Reporter, Settings
from spawn_report.counters import (
    KEEP_SECONDS,
    KEEP_WORKERS,
    STATE_FILE,
    CounterState,
    Totals,
    advance,
)

T0 = 1_769_508_000.0  # 2026-01-27T10:00:00Z
WHO = Identity("render-20260127-a1b2c3", 7, "i-0123456789abcdef7", "ip-10-0-0-7", "us-east-1")


@pytest.mark.parametrize(
    ("previous", "tasks", "errors", "increments", "totals"),
    [
        (None, 25, 2, Totals(25, 2), Totals(25, 2)),  # the first report counts its totals
        (None, 25, None, Totals(25, 0), Totals(25, 0)),
        (Totals(10, 1), 25, 3, Totals(15, 2), Totals(25, 3)),
        (Totals(10, 1), 10, 1, Totals(0, 0), Totals(10, 1)),  # nothing new
        (Totals(10, 1), 12, None, Totals(2, 0), Totals(12, 1)),  # no error count: keep it
        (Totals(40, 3), 5, 1, Totals(5, 1), Totals(5, 1)),  # re-run from scratch
        (Totals(40, 3), 5, None, Totals(5, 0), Totals(5, 0)),
        (Totals(40, 3), 5, 3, Totals(5, 3), Totals(5, 3)),  # the re-run's own 3 errors
        (Totals(40, 3), 45, 1, Totals(5, 1), Totals(45, 1)),  # errors alone reset
    ],
)
def test_increments_since_the_previous_report(
    previous: Totals | None,
    tasks: int,
    errors: int | None,
    increments: Totals,
    totals: Totals,
) -> None:
    assert advance(previous, tasks, errors) == (increments, totals)


reports = st.lists(
    st.tuples(st.integers(0, 10**6), st.one_of(st.none(), st.integers(0, 10**4))), max_size=30
)


@given(reports)
def test_an_increment_is_never_negative(sequence: list[tuple[int, int | None]]) -> None:
    previous = None
    for tasks, errors in sequence:
        increments, previous = advance(previous, tasks, errors)
        assert increments.tasks >= 0
        assert increments.errors >= 0


@given(st.lists(st.integers(0, 1000), max_size=30))
def test_increments_of_a_growing_count_add_up_to_its_last_total(steps: list[int]) -> None:
    previous, tasks, errors, summed = None, 0, 0, Totals(0, 0)
    for step in steps:
        tasks, errors = tasks + step, errors + step // 7
        increments, previous = advance(previous, tasks, errors)
        summed = Totals(summed.tasks + increments.tasks, summed.errors + increments.errors)
    assert summed == (Totals(tasks, errors) if steps else Totals(0, 0))


def test_the_state_file_round_trips_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    state = CounterState(tmp_path)
    assert state.read() == {}
    known = {("a", 0): Totals(3, 1), ("b.v2:run_7", 12): Totals(10**12, 0)}

    state.write(known, ("a", 0), T0)

    assert state.read() == known
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary left
    records = json.loads((tmp_path / STATE_FILE).read_text())
    records += [
        "garbage",
        {"array_id": "c", "task_index": -1, "tasks": 1, "errors": 0},
        {"array_id": "c", "task_index": 1, "tasks": True, "errors": 0},
        {"array_id": 5, "task_index": 1, "tasks": 1, "errors": 0},
    ]
    (tmp_path / STATE_FILE).write_text(json.dumps(records))
    assert state.read() == known


def test_the_state_keeps_recent_workers_only(tmp_path: Path) -> None:
    """A long-lived instance runs array after array through one spool: the state keeps
    the workers seen within `KEEP_SECONDS`, at most the `KEEP_WORKERS` newest."""
    state = CounterState(tmp_path)
    old = {("old-array", 0): Totals(5, 0)}
    state.write(old, ("old-array", 0), T0)
    state = CounterState(tmp_path)
    known = state.read()
    known[("new-array", 0)] = Totals(1, 0)

    state.write(known, ("new-array", 0), T0 + KEEP_SECONDS + 1)

    assert CounterState(tmp_path).read() == {("new-array", 0): Totals(1, 0)}

    state = CounterState(tmp_path)
    known = state.read()
    for index in range(KEEP_WORKERS + 10):
        known[("many", index)] = Totals(index, 0)
        state.write(known, ("many", index), T0 + KEEP_SECONDS + 2 + index)
        known = state.read()
    assert len(known) == KEEP_WORKERS
    assert min(index for _, index in known) == 10  # the oldest went first


def test_an_unreadable_state_file_counts_from_the_reported_totals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / STATE_FILE).write_text('[{"array_id": "a", "task_')  # torn

    assert CounterState(tmp_path).read() == {}
    assert "unreadable" in caplog.text


# --- through the Reporter: spooled increments ----------------------------------------------


def reporter(spool: Path, clock: list[float], who: Identity = WHO) -> Reporter:
    """A worker's reporter; a new one per report plays a new `spawn-report` process."""
    settings = Settings(spool_dir=spool, background=False, flush_seconds=3600, rows_at_once=False)
    # rows_at_once off: the rows wait beside their increments, where these tests look.
    return Reporter(settings, identity=who, clock=lambda: clock[0])


def counted(spool: Path) -> list[tuple[str, float]]:
    """(metric, value) of every fleet counter entry waiting in the spool, in order."""
    found: list[dict[str, Any]] = [json.loads(line) for line in (spool / "pending.jsonl").open()]
    return [
        (e["name"], e["value"])
        for e in found
        if e["kind"] == "metric" and e["namespace"] == "Spawn/Workers" and e["dimensions"] == {}
    ]


def test_each_report_spools_its_increments_beside_its_row(tmp_path: Path) -> None:
    spool, clock = tmp_path / "spool", [T0]
    for tasks, errors in ((0, None), (10, 1), (25, 1), (30, 4)):
        clock[0] += 1
        assert reporter(spool, clock).progress("running", tasks, error_count=errors)

    assert counted(spool) == [
        ("TasksCompleted", 0),
        ("ErrorCount", 0),
        ("TasksCompleted", 10),
        ("ErrorCount", 1),
        ("TasksCompleted", 15),
        ("ErrorCount", 0),
        ("TasksCompleted", 5),
        ("ErrorCount", 3),
    ]
    assert CounterState(spool).read() == {(WHO.array_id, WHO.array_index): Totals(30, 4)}


def test_workers_sharing_a_spool_are_counted_apart(tmp_path: Path) -> None:
    spool, clock = tmp_path / "spool", [T0]
    other = Identity(WHO.array_id, 8, "i-0123456789abcdef8", "ip-10-0-0-8", "us-east-1")

    reporter(spool, clock).progress("running", 10)
    reporter(spool, clock, other).progress("running", 4)
    reporter(spool, clock).progress("running", 12)

    assert [v for name, v in counted(spool) if name == "TasksCompleted"] == [10, 4, 2]


def test_reports_skipped_by_sampling_arrive_with_the_next_recorded_one(tmp_path: Path) -> None:
    spool, clock = tmp_path / "spool", [T0]
    recorded = [
        reporter(spool, clock).progress(status, tasks, error_count=errors, every_n_tasks=10)
        for status, tasks, errors in (
            ("running", 3, 0),
            ("running", 7, 1),  # skipped, with its error
            ("running", 10, 1),
            ("running", 13, 2),
            ("running", 19, 2),
        )
    ]

    assert recorded == [False, False, True, False, False]
    assert counted(spool) == [("TasksCompleted", 10), ("ErrorCount", 1)]
    assert CounterState(spool).read() == {(WHO.array_id, WHO.array_index): Totals(10, 1)}


def test_a_report_that_is_not_recorded_counts_nothing(tmp_path: Path) -> None:
    spool, clock = tmp_path / "spool", [T0]
    report = reporter(spool, clock)
    report.err = lambda _line: None

    assert not report.progress("running", 10**13)  # invalid for the backend
    assert not report.progress("done", 5)
    assert report.progress("running", 5)

    assert [v for name, v in counted(spool) if name == "TasksCompleted"] == [5]
