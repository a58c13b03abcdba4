"""The CLI's rendering: any body the API's OpenAPI schemas allow renders, as written."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from spawn_monitor import views
from tests.contract import bodies, check, schema

SETTINGS = settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def render(renderable: Any, width: int = 100) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


@SETTINGS
@given(bodies(schema("ArrayPage")))
def test_any_valid_arrays_page_renders(page: dict[str, Any]) -> None:
    render(views.arrays_table(page["arrays"]), width=60)


@SETTINGS
@given(bodies(schema("Fleet")))
def test_any_valid_fleet_renders(fleet: dict[str, Any]) -> None:
    render(views.fleet_view(fleet))


@SETTINGS
@given(bodies(schema("AlertList")))
def test_any_valid_alert_list_renders(alerts: dict[str, Any]) -> None:
    render(views.alerts_table(alerts["alerts"]))


@SETTINGS
@given(bodies(schema("WorkerPage")))
def test_any_valid_workers_page_renders(page: dict[str, Any]) -> None:
    render(views.workers_table(page["workers"]))


@SETTINGS
@given(
    bodies(schema("ArrayProgress")),
    bodies(schema("History")),
    bodies(schema("WorkerPage")),
)
def test_any_valid_progress_history_and_workers_make_a_watch_frame(
    progress: dict[str, Any], history: dict[str, Any], page: dict[str, Any]
) -> None:
    render(views.watch_frame(progress, history["points"], page["workers"]))
    assert views.outcome(progress) in (None, 0, 1)


def progress(**workers: int) -> dict[str, Any]:
    base = {"total": 4, "pending": 0, "running": 0, "completed": 0, "failed": 0}
    return {"array_id": "a-20260127-abcdef", "workers": {**base, **workers}, "recent": []}


def test_outcome_waits_for_every_worker_and_counts_lost_as_a_failure() -> None:
    assert views.outcome(progress(completed=3, running=1)) is None
    assert views.outcome(progress(completed=4)) == 0
    assert views.outcome(progress(completed=3, failed=1)) == 1
    assert views.outcome(progress(completed=3, lost=1)) == 1
    assert views.outcome(progress(total=0)) is None


def test_values_are_shown_as_written_never_as_markup() -> None:
    worker = {"task_index": 1, "status": "failed", "message": "[red]boom[/red] [/]"}
    assert "[red]boom[/red] [/]" in render(views.workers_table([worker]), width=200)


def test_lost_is_shown_only_where_the_api_counts_it() -> None:
    without = render(views.watch_frame(progress(completed=1, running=3)))
    assert "lost" not in without
    assert "lost 2" in render(views.watch_frame(progress(completed=1, running=1, lost=2)))


@given(
    st.dictionaries(st.sampled_from(["completed", "failed", "lost", "running"]), st.integers(0, 50))
)
def test_the_bar_is_always_its_width(counts: dict[str, int]) -> None:
    total = sum(counts.values())
    workers = {**counts, "total": total, "pending": 0}
    assert len(views.bar(workers, 30).plain) == 30


def test_rate_is_workers_ended_per_minute_over_the_last_ten_minutes() -> None:
    points = [
        {"time": "2026-01-27T09:00:00Z", "completed": 0, "failed": 0},
        {"time": "2026-01-27T10:00:00Z", "completed": 10, "failed": 0},
        {"time": "2026-01-27T10:05:00Z", "completed": 20, "failed": 5, "lost": 5},
    ]
    assert views.rate_per_minute(points) == 4.0
    assert views.rate_per_minute(points[:1]) is None


def test_durations() -> None:
    assert [views.duration(s) for s in (None, 5, 65, 3725)] == ["—", "5s", "1m 05s", "1h 02m"]


@SETTINGS
@given(st.data())
def test_the_generated_bodies_are_valid_so_the_properties_above_mean_something(
    data: st.DataObject,
) -> None:
    for name in ("ArrayPage", "Fleet", "AlertList", "WorkerPage", "History"):
        check(data.draw(bodies(schema(name))), schema(name))


def test_tasks_read_done_over_total_with_a_tilde_before_an_estimate() -> None:
    known = {"tasks": {"completed": 263, "total": 300, "percent": 87.7, "total_estimated": False}}
    assert views.tasks_text(known) == "tasks 263/300 (87.7 %)"
    guessed = {"tasks": {"completed": 263, "total": 400, "percent": 65.8, "total_estimated": True}}
    assert views.tasks_text(guessed) == "tasks 263/~400 (65.8 %)"
    undeclared = {"tasks": {"completed": 12, "total": None, "percent": None}}
    assert views.tasks_text(undeclared) == "tasks 12"
    assert views.tasks_text({"tasks_completed": 7}, label=False) == "7"  # an older backend


def running_by_tasks() -> dict[str, Any]:
    return {
        **progress(running=4),
        "tasks": {"completed": 40, "total": 400, "percent": 10.0, "total_estimated": False},
        "progress_basis": "tasks",
        "percent_complete": 10.0,
        "eta": "2026-01-27T10:30:00Z",
        "eta_seconds": 540,
        "finished_at": None,
        "duration_seconds": 60,
    }


def finished_by_workers() -> dict[str, Any]:
    return {
        **progress(completed=4),
        "tasks": {"completed": 9, "total": None, "percent": None, "total_estimated": False},
        "progress_basis": "workers",
        "percent_complete": 100.0,
        "eta": None,
        "eta_seconds": None,
        "finished_at": "2026-01-27T10:20:00Z",
        "duration_seconds": 723,
    }


def test_watch_shows_tasks_the_task_rate_and_the_eta_while_running() -> None:
    points = [
        {"time": "2026-01-27T10:00:00Z", "completed": 0, "failed": 0, "tasks_completed": 0},
        {"time": "2026-01-27T10:02:00Z", "completed": 0, "failed": 0, "tasks_completed": 40},
    ]
    shown = render(views.watch_frame(running_by_tasks(), points), width=140)
    assert "10.0%" in shown
    assert "(workers)" not in shown
    assert "tasks 40/400 (10.0 %)" in shown
    assert "rate 20.0 tasks/min" in shown
    assert "ETA 9m 00s (2026-01-27 10:30:00Z)" in shown
    assert "finished" not in shown


def test_watch_names_the_worker_basis_and_when_a_finished_array_finished() -> None:
    shown = render(views.watch_frame(finished_by_workers()), width=140)
    assert "100.0% (workers)" in shown
    assert "tasks 9" in shown
    assert "rate — workers/min" in shown
    assert "finished at 2026-01-27 10:20:00Z after 12m 03s" in shown
    assert "ETA" not in shown


def test_the_arrays_table_shows_tasks_the_basis_the_eta_and_the_finish() -> None:
    running = {**running_by_tasks(), "array_id": "run-20260127-aaaaaa"}
    done = {**finished_by_workers(), "array_id": "done-20260127-bbbbbb"}
    shown = render(views.arrays_table([running, done]), width=200)
    run_row = next(line for line in shown.splitlines() if "run-20260127" in line)
    done_row = next(line for line in shown.splitlines() if "done-20260127" in line)
    assert "10.0%" in run_row
    assert "(workers)" not in run_row
    assert "40/400" in run_row
    assert "9m 00s" in run_row
    assert "100.0% (workers)" in done_row
    assert "10:20:00Z (12m 03s)" in done_row


def test_the_task_rate_counts_tasks_completed_in_the_history() -> None:
    points = [
        {"time": "2026-01-27T10:00:00Z", "completed": 0, "tasks_completed": 100},
        {"time": "2026-01-27T10:05:00Z", "completed": 1, "tasks_completed": 600},
    ]
    assert views.rate_per_minute(points, tasks=True) == 100.0
    assert views.rate_per_minute([{"time": "2026-01-27T10:00:00Z"}] * 2, tasks=True) is None
