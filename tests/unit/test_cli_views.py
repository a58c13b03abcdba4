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
