"""What the CLI shows, as rich renderables built from the API's JSON. Pure: no I/O.

Every value from the API is shown as plain `Text`, never parsed as rich markup, so a
worker's message like `[red]` is printed as written. Any body that validates against
the API's OpenAPI schemas renders (a property test feeds these functions such bodies);
a count the backend does not send yet (`lost`) shows as 0.

Example:
    >>> Console().print(arrays_table(api.pages("/arrays", "arrays")))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from spawn_monitor import launch_view
from spawn_monitor.cost_view import cost_cell, cost_line, has_cost

BAR_WIDTH = 40
RATE_WINDOW_SECONDS = 600
# Colours of the statuses, in the order the bar draws them, and the bar's character for
# each, distinct without colour too (logs, NO_COLOR).
SEGMENTS = (
    ("completed", "green"),
    ("failed", "red"),
    ("lost", "magenta"),
    ("running", "blue"),
    ("pending", "grey50"),
)
BAR_CHARS = {"completed": "█", "failed": "▓", "lost": "▒", "running": "░", "pending": "·"}


def count(workers: Mapping[str, Any], status: str) -> int:
    value = workers.get(status)
    return value if isinstance(value, int) else 0


def ended(workers: Mapping[str, Any]) -> int:
    """Workers that will not change any more: completed, failed and lost."""
    return count(workers, "completed") + count(workers, "failed") + count(workers, "lost")


def outcome(progress: Mapping[str, Any]) -> int | None:
    """None while the array runs; once every worker has ended, 0 if all completed, else 1."""
    workers = progress.get("workers") or {}
    total = count(workers, "total")
    if total == 0 or ended(workers) < total:
        return None
    return 0 if count(workers, "completed") == total else 1


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    left = max(0, int(seconds))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def when(value: Any, short: bool = False) -> str:
    """An API time, shorter (`2026-01-27 10:20:00Z`, or `10:20:00Z` if `short`); anything
    unparsable as given."""
    if not isinstance(value, str):
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%H:%M:%SZ" if short else "%Y-%m-%d %H:%M:%SZ")


def statuses(workers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The bar's statuses and colours; `lost` only where the API counts it."""
    return [(s, c) for s, c in SEGMENTS if s != "lost" or "lost" in workers]


def text(value: Any) -> Text:
    return Text("—" if value is None else str(value))


def bar(workers: Mapping[str, Any], width: int = BAR_WIDTH) -> Text:
    """A bar of `width` cells coloured by status (largest remainders get the odd cells)."""
    total = count(workers, "total")
    shown = Text()
    if total <= 0:
        return shown.append(BAR_CHARS["pending"] * width, style="grey50")
    sizes = [min(count(workers, s), total) * width / total for s, _ in SEGMENTS]
    cells = [int(size) for size in sizes]
    order = sorted(range(len(sizes)), key=lambda i: sizes[i] - cells[i], reverse=True)
    for i in order[: max(0, min(width, round(sum(sizes))) - sum(cells))]:
        cells[i] += 1
    for (status, colour), n in zip(SEGMENTS, cells, strict=True):  # absent counts draw nothing
        shown.append(BAR_CHARS[status] * n, style=colour)
    return shown.append(BAR_CHARS["pending"] * max(0, width - sum(cells)), style="grey50")


def percent(progress: Mapping[str, Any]) -> str:
    """`percent_complete`, marked `(workers)` when it counts ended workers, not tasks."""
    value = progress.get("percent_complete")
    if not isinstance(value, int | float):
        return "—"
    return f"{value:.1f}%" + (" (workers)" if progress.get("progress_basis") == "workers" else "")


def tasks_text(progress: Mapping[str, Any], label: bool = True) -> str:
    """`tasks 263/300 (87.7 %)` (`263/300` without `label`); `~` before a total
    estimated for workers not yet reported; only the count done when no worker declares
    a total."""
    tasks = progress.get("tasks")
    if not isinstance(tasks, Mapping):
        tasks = {"completed": progress.get("tasks_completed")}
    done, total = tasks.get("completed"), tasks.get("total")
    shown = "—" if done is None else str(done)
    if isinstance(total, int):
        shown += f"/{'~' if tasks.get('total_estimated') else ''}{total}"
        share = tasks.get("percent")
        if label and isinstance(share, int | float):
            shown += f" ({share:.1f} %)"
    return f"tasks {shown}" if label else shown


def ended_text(progress: Mapping[str, Any], short: bool = False) -> str:
    """A finished array's `finished_at` and how long it took; its ETA while running."""
    if outcome(progress) is None and progress.get("finished_at") is None:
        eta = progress.get("eta")
        shown = f"ETA {duration(progress.get('eta_seconds'))}"
        return shown + (f" ({when(eta, short)})" if eta else "")
    took = progress.get("duration_seconds")
    finished_at = progress.get("finished_at")
    shown = f"finished at {when(finished_at, short)}" if finished_at else "finished"
    return shown + (f" after {duration(took)}" if took is not None else "")


def rate_per_minute(points: Sequence[Mapping[str, Any]], tasks: bool = False) -> float | None:
    """Workers ended (or, with `tasks`, tasks completed) per minute over the last
    `RATE_WINDOW_SECONDS` of the history."""
    timed = []
    for point in points:
        try:
            at = datetime.fromisoformat(str(point["time"])).timestamp()
        except (KeyError, ValueError):
            continue
        done = point.get("tasks_completed") if tasks else ended(point)
        if isinstance(done, int):
            timed.append((at, done))
    if len(timed) < 2:
        return None
    timed.sort()
    recent = [p for p in timed if p[0] >= timed[-1][0] - RATE_WINDOW_SECONDS]
    (first_t, first_n), (last_t, last_n) = (
        (recent[0], recent[-1]) if len(recent) > 1 else timed[-2:]
    )
    if last_t <= first_t:
        return None
    return max(0.0, (last_n - first_n) * 60 / (last_t - first_t))


def ended_cell(progress: Mapping[str, Any]) -> str:
    """The arrays table's last column: the ETA, or when a finished array finished and
    how long it took."""
    if outcome(progress) is None and progress.get("finished_at") is None:
        return duration(progress.get("eta_seconds"))
    took = progress.get("duration_seconds")
    shown = when(progress.get("finished_at"), short=True)
    return shown + (f" ({duration(took)})" if took is not None else "")


def arrays_table(arrays: Sequence[Mapping[str, Any]]) -> Table:
    lost = any("lost" in (a.get("workers") or {}) for a in arrays)
    shown = ["completed", "failed", *(["lost"] if lost else []), "running", "stalled", "pending"]
    table = Table(title=f"Arrays ({len(arrays)})", title_justify="left")
    table.add_column("array", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    for status in [*shown, "total"]:
        table.add_column(status, justify="right")
    table.add_column("eta / finished", justify="right", no_wrap=True)
    costs = has_cost(arrays)
    if costs:
        table.add_column("cost / rate / projected / budget", justify="right", no_wrap=True)
    for progress in arrays:
        workers = progress.get("workers") or {}
        stalled = count(workers, "stalled")
        table.add_row(
            text(progress.get("array_id")),
            bar(workers, 12),
            percent(progress),
            tasks_text(progress, label=False),
            *(
                Text(str(count(workers, s)), style="yellow" if s == "stalled" and stalled else "")
                for s in shown
            ),
            str(count(workers, "total")),
            ended_cell(progress),
            *([cost_cell(progress)] if costs else []),
        )
    return table


def _counts_table(title: str, counts: Mapping[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(text(key), text(value))
    return table


def fleet_view(fleet: Mapping[str, Any]) -> RenderableType:
    instances = fleet.get("instances") or {}
    unhealthy = fleet.get("unhealthy") or {}
    interruptions = fleet.get("interruptions") or {}
    summary = Table(title="Fleet", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("instances (not gone)", text(instances.get("total")))
    summary.add_row("running", text(instances.get("running")))
    ids = ", ".join(str(i) for i in unhealthy.get("instance_ids") or [])
    summary.add_row(
        "unhealthy",
        Text(f"{unhealthy.get('count', '—')} ({unhealthy.get('percent', '—')} %)")
        + Text(f" {ids}" if ids else ""),
    )
    summary.add_row(
        "spot interruptions",
        Text(
            f"{interruptions.get('last_hour', '—')} last hour, "
            f"{interruptions.get('last_24h', '—')} last 24 h, "
            f"{interruptions.get('total', '—')} in all"
        ),
    )
    arrays = fleet.get("active_arrays") or []
    summary.add_row("active arrays", Text(", ".join(str(a) for a in arrays) or "none"))
    summary.add_row("launch failures", launch_view.fleet_row(fleet))
    summary.add_row("updated", when(fleet.get("updated_at")))
    parts: list[RenderableType] = [summary]
    for key, title in (
        ("by_state", "by state"),
        ("by_type", "running by type"),
        ("by_availability_zone", "running by zone"),
        ("by_lifecycle", "running by lifecycle"),
    ):
        counts = instances.get(key) or {}
        if counts:
            parts.append(_counts_table(title, counts))
    return Group(*parts)


def alerts_table(alerts: Sequence[Mapping[str, Any]]) -> Table:
    """Both kinds of the alert feed: an alarm's change, or the subject of an alert sent."""
    table = Table(title=f"Alerts ({len(alerts)}, newest first)", title_justify="left")
    for header in ("at", "kind", "severity", "what", "instance", "array", "detail"):
        table.add_column(header, overflow="fold")
    severities = {"critical": "red", "warning": "yellow", "info": "green"}
    styles = {"ALARM": "red", "OK": "green"}
    for alert in alerts:
        severity = str(alert.get("severity") or "—")
        if alert.get("kind") == "system":
            what = text(alert.get("event_type"))
            detail = text(alert.get("subject"))
        else:
            new = str(alert.get("new_state", "—"))
            what = text(alert.get("alarm_name"))
            detail = (
                Text(f"{alert.get('old_state') or '?'} → ")
                + Text(new, style=styles.get(new, ""))
                + Text(f" {alert.get('reason') or ''}".rstrip())
            )
        table.add_row(
            when(alert.get("at") or alert.get("changed_at")),
            text(alert.get("kind") or "alarm"),
            Text(severity, style=severities.get(severity, "")),
            what,
            text(alert.get("instance_id")),
            text(alert.get("array_id")),
            detail,
        )
    return table


def workers_table(
    workers: Sequence[Mapping[str, Any]], title: str = "Workers", short: bool = False
) -> Table:
    table = Table(title=f"{title} ({len(workers)})", title_justify="left")
    for header in ("task", "status", "tasks", "last update", "instance", "host"):
        table.add_column(header, no_wrap=True, justify="right" if header == "tasks" else "left")
    table.add_column("message", overflow="fold")
    colours = {
        "completed": "green",
        "failed": "red",
        "lost": "magenta",
        "running": "blue",
        "invalid": "yellow",
    }
    for worker in workers:
        status = str(worker.get("status", "—"))
        label = Text(status, style=colours.get(status, ""))
        if worker.get("stalled"):
            label.append(" (stalled)", style="yellow")
        done = worker.get("tasks_completed")
        total = worker.get("tasks_total")
        tasks = "—" if done is None else f"{done}/{total}" if total is not None else str(done)
        message = worker.get("message") if status != "invalid" else worker.get("invalid_reason")
        table.add_row(
            text(worker.get("task_index")),
            label,
            tasks,
            when(worker.get("last_update"), short),
            text(worker.get("instance_id")),
            text(worker.get("hostname")),
            text(message),
        )
    return table


def watch_frame(
    progress: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]] = (),
    stalled: Sequence[Mapping[str, Any]] = (),
) -> RenderableType:
    """One frame of `spawn-monitor watch`: bar, counts, rate, ETA, stalled, recent rows."""
    workers = progress.get("workers") or {}
    title = Text(str(progress.get("array_id", "?")), style="bold")
    if progress.get("name"):
        title.append(f"  ({progress['name']})")
    title.append(f"   updated {when(progress.get('updated_at'))}", style="grey50")
    total = count(workers, "total")
    line = bar(workers).append(f"  {percent(progress)}  {ended(workers)} of {total} ended")
    counts = Text()
    for status, colour in statuses(workers):
        counts.append(f"{status} ", style=colour).append(f"{count(workers, status)}   ")
    stalled_n = count(workers, "stalled")
    counts.append("stalled ", style="yellow").append(f"{stalled_n}   ")
    counts.append("invalid ", style="yellow").append(str(count(workers, "invalid")))
    by_tasks = progress.get("progress_basis") == "tasks"
    rate = rate_per_minute(points, tasks=by_tasks)
    unit = "tasks" if by_tasks else "workers"
    figures = Text(f"{tasks_text(progress)}   ")
    figures.append(f"rate {'—' if rate is None else f'{rate:.1f}'} {unit}/min   ")
    figures.append(ended_text(progress))
    state = outcome(progress)
    if state is not None:
        figures.append(
            "   finished" if state == 0 else "   ended with failures",
            style="bold green" if state == 0 else "bold red",
        )
    parts: list[RenderableType] = [title, line, counts, figures]
    if (failed_launches := launch_view.array_line(progress)) is not None:
        parts.insert(3, failed_launches)
    spent = cost_line(progress)
    if spent is not None:
        parts.append(spent)
    if stalled_n:
        parts.append(workers_table(stalled, f"Stalled workers, of {stalled_n}", short=True))
    recent = progress.get("recent") or []
    if recent:
        parts.append(workers_table(recent, "Recent updates", short=True))
    return Group(*parts)
