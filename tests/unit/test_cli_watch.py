"""`spawn-monitor watch`'s ending: the failed and lost workers it names, and the few
pages it reads to name them, against a fake API that pages like the real one."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from rich.console import Console

from spawn_monitor import watch
from spawn_monitor.api import Api


class PagedApi(Api):
    """Progress of an ended array and its workers, two to a page, counting requests."""

    def __init__(self, workers: list[dict[str, Any]]) -> None:
        self.rows = workers
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **params: Any) -> Any:
        self.requests.append((path, params))
        if path.endswith("/progress"):
            counts = {s: sum(w["status"] == s for w in self.rows) for s in ("failed", "lost")}
            completed = sum(w["status"] == "completed" for w in self.rows)
            return {
                "array_id": "a-1",
                "workers": {**counts, "completed": completed, "total": len(self.rows)},
            }
        if path.endswith("/history"):
            return {"points": []}
        if path.endswith("/logs"):
            index = int(path.split("/")[-2])
            if index == 1:
                return {"lines": [], "next": None, "status": "failed"}
            message = f"RuntimeError: CUDA out of memory (task {index})"
            return {"lines": [{"at": "2026-12-04T02:00:00Z", "message": message}], "next": None}
        chosen = [w for w in self.rows if w["status"] == params.get("status")]
        start = int(params.get("cursor") or 0)
        page = chosen[start : start + 2]
        more = start + 2 < len(chosen)
        return {"workers": page, "next": str(start + 2) if more else None}

    def iter_pages(self, path: str, key: str, **params: Any) -> Iterator[Any]:
        return super().iter_pages(path, key, **{**params, "limit": 2})


def _workers(failed: int, lost: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"task_index": 0, "status": "completed", "instance_id": "i-0", "message": None}
    ]
    for n in range(failed):
        rows.append(
            {"task_index": 1 + n, "status": "failed", "instance_id": f"i-f{n}", "message": "oom"}
        )
    for n in range(lost):
        index = 1 + failed + n
        rows.append(
            {
                "task_index": index,
                "status": "lost",
                "instance_id": f"i-l{n}",
                "message": None,
                "lost_cause": "spot_interruption",
            }
        )
    return rows


def _run(api: PagedApi) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    return watch.watch(api, "a-1", console, once=True), out.getvalue()


def test_an_ended_array_names_its_failed_and_lost_workers() -> None:
    api = PagedApi(_workers(failed=2, lost=1))
    status, shown = _run(api)
    assert status == 1
    assert "Failed workers (2)" in shown
    assert "Lost workers (1)" in shown
    for instance in ("i-f0", "i-f1", "i-l0"):
        assert instance in shown
    assert "oom" in shown
    assert "spot_interruption" in shown
    assert "more" not in shown


def test_the_ending_shows_each_workers_last_log_line() -> None:
    api = PagedApi(_workers(failed=2, lost=1))
    status, shown = _run(api)
    assert status == 1
    assert "last line" in shown
    assert "CUDA out of memory (task 2)" in shown  # failed
    assert "CUDA out of memory (task 3)" in shown  # lost
    assert "(task 1)" not in shown  # no lines: the cell stays empty
    logs = [(path, p) for path, p in api.requests if path.endswith("/logs")]
    assert [p["limit"] for _, p in logs] == [1, 1, 1]


def test_many_are_bounded_and_the_rest_counted_reading_only_the_pages_shown() -> None:
    api = PagedApi(_workers(failed=25, lost=0))
    status, shown = _run(api)
    assert status == 1
    assert "i-f9" in shown
    assert "i-f10" not in shown
    assert "and 15 more (spawn-monitor workers a-1 --status failed)" in shown
    pages = [p for path, p in api.requests if path.endswith("/workers")]
    assert [p.get("cursor") for p in pages] == [None, "2", "4", "6", "8"]
    assert {p["status"] for p in pages} == {"failed"}  # no lost page: the summary has none


def test_an_array_that_completed_reads_no_worker_pages() -> None:
    api = PagedApi(_workers(failed=0, lost=0))
    status, shown = _run(api)
    assert status == 0
    assert "workers (" not in shown
    assert not [path for path, _ in api.requests if path.endswith("/workers")]
