"""Progress in tasks through the local stack (SPEC §7): rows written as workers write
them reach `/arrays/{id}/progress` through the real stream; percent, ETA and the finished
figures follow the tasks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually, put_rows

pytestmark = pytest.mark.e2e


def tasks_rows(stack: Stack, array_id: str, rows: list[tuple[str, int, int]]) -> None:
    """One row per worker: (status, tasks_completed, tasks_total)."""
    put_rows(stack, array_id, [(status, done, total, None) for status, done, total in rows])


def progress_when(stack: Stack, array_id: str, done: int) -> dict[str, Any]:
    """The progress body once the summary holds `done` tasks completed."""

    def seen() -> dict[str, Any] | None:
        code, body = stack.get(f"/arrays/{array_id}/progress")
        return body if code == 200 and body["tasks"]["completed"] == done else None

    return eventually(seen, timeout=15)


def test_a_running_array_reads_its_tasks_and_gets_an_eta_while_they_advance(
    stack: Stack,
) -> None:
    array_id = "tasks-20261204-a1a1a1"
    tasks_rows(stack, array_id, [("running", 40, 100)] + [("running", 0, 100)] * 3)
    body = progress_when(stack, array_id, 40)
    assert body["tasks"] == {
        "completed": 40,
        "total": 400,
        "percent": 10.0,
        "total_estimated": False,
    }
    assert body["progress_basis"] == "tasks"
    assert body["percent_complete"] == 10.0
    assert body["finished_at"] is None
    # Stream records are stamped to the second: the second observation must be a later
    # second for the two to span time.
    time.sleep(1.1)
    tasks_rows(stack, array_id, [("running", 80, 100)] + [("running", 0, 100)] * 3)
    later = progress_when(stack, array_id, 80)
    assert later["percent_complete"] == 20.0
    assert later["eta"] is not None
    assert later["eta_seconds"] is not None
    assert later["eta_seconds"] > 0
    assert later["finished_at"] is None


def test_a_finished_array_has_finished_at_no_eta_and_a_body_that_stays_put(
    stack: Stack,
) -> None:
    array_id = "tasksdone-20261204-b2b2b2"
    tasks_rows(stack, array_id, [("running", 50, 100)] * 4)
    progress_when(stack, array_id, 200)
    time.sleep(1.1)  # a later second, so the array has a duration
    tasks_rows(stack, array_id, [("completed", 100, 100)] * 4)
    body = progress_when(stack, array_id, 400)
    assert body["percent_complete"] == 100.0
    assert body["progress_basis"] == "tasks"
    assert body["finished_at"] is not None
    assert body["eta"] is None
    assert body["eta_seconds"] is None
    assert body["duration_seconds"] is not None
    assert body["duration_seconds"] >= 1
    stack.tick()  # the tick stores when it saw the array finished: the body keeps it
    time.sleep(1.0)
    assert stack.get(f"/arrays/{array_id}/progress") == (200, body)
