"""`spawn-monitor logs ARRAY INDEX` and `spawn-monitor errors ARRAY` (SPEC §16).

`logs` prints a worker's newest lines, oldest first (`GET …/workers/{index}/logs`),
read from CloudWatch Logs, so they are there after the instance is gone. `--follow`
polls for newer lines, backing off from `FOLLOW_FIRST` to `FOLLOW_MAX` seconds while
nothing comes, until the worker's row says completed, failed or lost. `errors` prints
error lines counted per worker (`GET /arrays/{id}/errors`), the most first.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from rich.table import Table

from spawn_monitor.api import Api, ApiError, array_path

ENDED = ("completed", "failed", "lost")
FOLLOW_FIRST = 1.0
FOLLOW_MAX = 15.0
# Pages read back per poll when more lines came than one page holds.
FOLLOW_PAGES_MAX = 10
_DURATION = re.compile(r"^([0-9]{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_time(value: str | None, now: datetime | None = None) -> str | None:
    """`--since` as the API's ISO time: a duration back from now (`90s`, `30m`, `1h`,
    `2d`) or an ISO-8601 UTC time, passed on as written. ValueError otherwise."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|\+00:00)", value):
        return value
    raise ValueError(f"--since must be a duration like 30m, 1h, 2d or an ISO UTC time: {value!r}")


def logs_path(array_id: str, index: int) -> str:
    return array_path(array_id, f"workers/{index}/logs")


def format_line(line: Mapping[str, Any]) -> str:
    return f"{line.get('at', '')}  {str(line.get('message', '')).rstrip()}"


def last_line(api: Api, array_id: str, index: Any) -> str | None:
    """A worker's newest log line, or None (no logs, or a backend without the route)."""
    if not isinstance(index, int):
        return None
    try:
        page = api.get(logs_path(array_id, index), limit=1)
    except ApiError:
        return None
    lines = page.get("lines") if isinstance(page, dict) else None
    if not lines:
        return None
    return str(lines[-1].get("message", "")).rstrip() or None


class Follower:
    """Prints lines once each: what is new since the last line printed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last_at: str | None = None
        self.at_last: Counter[str] = Counter()  # messages printed at `last_at`

    def fresh(self, lines: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        new = []
        budget = Counter(self.at_last)
        for line in lines:
            at, message = str(line.get("at", "")), str(line.get("message", ""))
            if self.last_at is not None and _ms(at) < _ms(self.last_at):
                continue
            if at == self.last_at and budget[message] > 0:
                budget[message] -= 1
                continue
            new.append(line)
        return new

    def print(self, lines: Sequence[Mapping[str, Any]]) -> int:
        for line in lines:
            at = str(line.get("at", ""))
            if at != self.last_at:
                self.last_at, self.at_last = at, Counter()
            self.at_last[str(line.get("message", ""))] += 1
            self.out.write(format_line(line) + "\n")
        self.out.flush()
        return len(lines)


def _ms(at: str) -> float:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _newer(
    api: Api, path: str, since: str | None, grep: str | None, limit: int
) -> tuple[list[Mapping[str, Any]], str | None]:
    """Lines at or after `since`, oldest first (paging back while pages are full), and
    the worker's status."""
    pages: list[list[Mapping[str, Any]]] = []
    cursor = None
    status = None
    for _ in range(FOLLOW_PAGES_MAX):
        page = api.get(path, limit=limit, since=since, grep=grep, cursor=cursor)
        status = page.get("status")
        pages.append(page.get("lines") or [])
        cursor = page.get("next")
        if not cursor:
            break
    return [line for page in reversed(pages) for line in page], status


def show_logs(
    api: Api,
    array_id: str,
    index: int,
    out: TextIO,
    *,
    since: str | None = None,
    grep: str | None = None,
    limit: int = 100,
    follow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the worker's newest `limit` lines; with `follow`, then new ones until it
    ends. Returns the exit status (0)."""
    path = logs_path(array_id, index)
    page = api.get(path, limit=limit, since=since, grep=grep)
    follower = Follower(out)
    if not follower.print(page.get("lines") or []) and not follow:
        window = f"since {since}" if since else "in the window"
        sys.stderr.write(f"no log lines for worker {index} of {array_id} {window}\n")
    status = page.get("status")
    if not follow:
        return 0
    wait = FOLLOW_FIRST
    while status not in ENDED:
        sleep(wait)
        lines, status = _newer(api, path, follower.last_at or since, grep, limit)
        printed = follower.print(follower.fresh(lines))
        # Back off while nothing comes; poll quickly again once lines flow.
        wait = FOLLOW_FIRST if printed else min(FOLLOW_MAX, wait * 2)
    # Lines written just before the row's final status.
    lines, status = _newer(api, path, follower.last_at or since, grep, limit)
    follower.print(follower.fresh(lines))
    out.write(f"-- worker {index} of {array_id} ended: {status}\n")
    return 0


def errors_table(document: Mapping[str, Any], array_id: str) -> Table:
    scanned = document.get("scanned") or {}
    complete = "" if scanned.get("complete", True) else ", stopped early at the read budget"
    table = Table(
        title=f"Errors of {array_id} ({scanned.get('from', '?')} to {scanned.get('to', '?')}"
        f"{complete})",
        title_justify="left",
    )
    for header in ("task", "instance", "errors", "last error line"):
        table.add_column(header, no_wrap=header != "last error line", overflow="fold")
    for entry in document.get("errors") or []:
        table.add_row(
            str(entry.get("task_index")),
            str(entry.get("instance_id")),
            str(entry.get("count")),
            str(entry.get("last_message", "")),
        )
    return table
