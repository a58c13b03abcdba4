"""`spawn-monitor watch ARRAY_ID`: one array, redrawn in place until it ends.

Each refresh reads the array's progress (one summary item on the backend), its last
15 minutes of history for the rate, and, only while some workers are stalled, one page
of its running workers to name them. spawn's guide clears the screen every 10 s and
Scans the table; this reads a few items whatever the array's size.

Exit status: 0 when every worker completed, 1 when the array ended with failed or lost
workers; `--once` prints one frame and exits the same way (0 while still running).
Ctrl-C is handled by the caller (exit 130).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from spawn_monitor.api import Api, NotFound, array_path
from spawn_monitor.views import outcome, watch_frame

HISTORY_WINDOW = timedelta(minutes=15)
STALLED_SHOWN = 5


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
        return outcome(progress) or 0
    with Live(frame, console=console, auto_refresh=False, transient=False) as live:
        while (state := outcome(progress)) is None:
            sleep(interval)
            progress, frame = snapshot(api, array_id)
            live.update(frame, refresh=True)
    if not console.is_terminal:
        console.line()  # a log or pipe gets the final frame as whole lines
    return state
