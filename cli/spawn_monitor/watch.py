"""`spawn-monitor watch ARRAY_ID`: one array, redrawn in place until it ends.

Each refresh reads the array's progress (one summary item on the backend), its last
15 minutes of history for the rate, and, only while some workers are stalled, one page
of its running workers to name them. spawn's guide clears the screen every 10 s and
Scans the table; this reads a few items whatever the array's size.

Once the array has ended it names its failed and lost workers (index, instance,
message, last log line): the first `ENDED_SHOWN` of each, read through `/workers?status=`, then
"and N more" from the summary's counts. Exit status: 0 when every worker completed, 1
when the array ended with failed or lost workers; `--once` prints one frame (and the
ending, once ended) and exits the same way (0 while still running). Ctrl-C is handled by
the caller (exit 130).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from spawn_monitor.api import Api, NotFound, array_path
from spawn_monitor.logs import last_line
from spawn_monitor.views import count, outcome, text, watch_frame

HISTORY_WINDOW = timedelta(minutes=15)
STALLED_SHOWN = 5
# Failed and lost workers named when the array ends, of each status.
ENDED_SHOWN = 10
ENDED_STATUSES = ("failed", "lost")


def snapshot(api: Api, array_id: str) -> tuple[Mapping[str, Any], RenderableType]:
    """The array's progress and the frame drawn from it."""
    progress = api.get(array_path(array_id, "progress"))
    since = (datetime.now(UTC) - HISTORY_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        points = api.get(array_path(array_id, "history"), since=since).get("points", [])
    except NotFound:  # a backend without the history route: no rate, the rest still shows
        points = []
    stalled: list[Mapping[str, Any]] = []
    if (progress.get("workers") or {}).get("stalled"):
        page = api.get(array_path(array_id, "workers"), status="running", limit=100)
        stalled = [w for w in page.get("workers", []) if w.get("stalled")][:STALLED_SHOWN]
    return progress, watch_frame(progress, points, stalled)


def unfinished(
    api: Api, array_id: str, progress: Mapping[str, Any], shown: int = ENDED_SHOWN
) -> dict[str, tuple[list[Mapping[str, Any]], int]]:
    """The first `shown` failed and lost workers and how many there are of each, for
    the statuses the summary counts; the pages stop once `shown` rows are read."""
    workers = progress.get("workers") or {}
    found: dict[str, tuple[list[Mapping[str, Any]], int]] = {}
    for status in ENDED_STATUSES:
        total = count(workers, status)
        if total:
            rows = api.iter_pages(
                array_path(array_id, "workers"), "workers", status=status, limit=shown
            )
            # Each with its last log line (one small read each; SPEC §16).
            named: list[Mapping[str, Any]] = [
                {**row, "last_line": last_line(api, array_id, row.get("task_index"))}
                for row in islice(rows, shown)
            ]
            found[status] = (named, total)
    return found


def ending(
    array_id: str, found: Mapping[str, tuple[Sequence[Mapping[str, Any]], int]]
) -> RenderableType:
    """The failed and lost workers, as tables of index, instance and message."""
    parts: list[RenderableType] = []
    for status, (rows, total) in found.items():
        table = Table(title=f"{status.capitalize()} workers ({total})", title_justify="left")
        for header in ("task", "instance", "message", "last line"):
            table.add_column(header, no_wrap=header in ("task", "instance"), overflow="fold")
        for row in rows:
            message = row.get("message")
            if message is None and status == "lost":
                message = row.get("lost_cause")
            table.add_row(
                text(row.get("task_index")),
                text(row.get("instance_id")),
                text(message),
                text(row.get("last_line")),
            )
        parts.append(table)
        if total > len(rows):
            more = total - len(rows)
            hint = f"spawn-monitor workers {array_id} --status {status}"
            parts.append(Text(f"… and {more} more ({hint})"))
    return Group(*parts)


def watch(
    api: Api,
    array_id: str,
    console: Console,
    interval: float = 2.0,
    once: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show the array until it ends; returns the exit status (see the module doc)."""
    progress, frame = snapshot(api, array_id)
    if once:
        console.print(frame)
        if outcome(progress):
            console.print(ending(array_id, unfinished(api, array_id, progress)))
        return outcome(progress) or 0
    with Live(frame, console=console, auto_refresh=False, transient=False) as live:
        while (state := outcome(progress)) is None:
            sleep(interval)
            progress, frame = snapshot(api, array_id)
            live.update(frame, refresh=True)
    if not console.is_terminal:
        console.line()  # a log or pipe gets the final frame as whole lines
    if state:
        console.print(ending(array_id, unfinished(api, array_id, progress)))
    return state
