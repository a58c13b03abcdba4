"""An array's report: the one message per destination when an array finishes.

Built from the array's `array_finished` alert, whose details are the array's progress
body (SPEC §7) at the moment it finished: tasks, workers, duration, interruptions and
cost. The first failed and lost workers, with their last messages, are read from the
progress table (a bounded read: `EXAMPLES` of each). Its notice id is
`report:{array_id}`, so however often the alert arrives each destination gets one.

    >>> ArrayReports(rows, region="us-east-1", web_view_url="").report_notice(signal).subject
    'Array render-a finished: 998 of 1,000 completed, 1 failed, 1 lost'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from botocore.exceptions import ClientError

from chalicelib.console.dashboards import array_dashboard_name
from chalicelib.notify.intake import Signal
from chalicelib.notify.model import Notice

logger = logging.getLogger(__name__)

# Failed and lost workers named in a report, of each.
EXAMPLES = 5
MESSAGE_MAX = 200


class WorkerPages(Protocol):
    """A page of an array's workers of one status (`ProgressRows.workers`)."""

    def workers(
        self,
        array_id: str,
        status: str | None,
        limit: int,
        after: str | None,
        now: datetime,
        stall_after: int,
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class ArrayReports:
    """Builds array reports.

    Args:
        rows: the progress table's reader.
        region: where the array's dashboard is (its console link).
        web_view_url: `NOTIFY_WEB_VIEW_URL` (empty: no web view link).
        stall_after: `STALL_AFTER_SECONDS` (how rows are shown).
        clock: the current time.
    """

    def __init__(
        self,
        rows: WorkerPages,
        *,
        region: str,
        web_view_url: str = "",
        stall_after: int = 600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rows = rows
        self.region = region
        self.web_view_url = web_view_url
        self.stall_after = stall_after
        self.clock = clock

    def report_notice(self, signal: Signal) -> Notice:
        view = signal.details
        array_id = signal.array_id or str(view.get("array_id") or "-")
        name = _text(view.get("name")) or array_id
        workers = view.get("workers") if isinstance(view.get("workers"), Mapping) else {}
        assert isinstance(workers, Mapping)
        total, completed = _int(workers.get("total")), _int(workers.get("completed"))
        failed, lost, pending = (
            _int(workers.get("failed")),
            _int(workers.get("lost")),
            _int(workers.get("pending")),
        )
        subject = (
            f"Array {name} finished: {completed:,} of {total:,} completed, "
            f"{failed:,} failed, {lost:,} lost"
        )
        facts: list[tuple[str, str]] = [("Workers", f"{completed:,} of {total:,} completed")]
        tasks = view.get("tasks") if isinstance(view.get("tasks"), Mapping) else {}
        assert isinstance(tasks, Mapping)
        done_tasks = _int(tasks.get("completed", view.get("tasks_completed")))
        if tasks.get("total"):
            facts.append(("Tasks", f"{done_tasks:,} of {_int(tasks.get('total')):,} completed"))
        else:
            facts.append(("Tasks", f"{done_tasks:,} completed"))
        facts.append(("Failed / lost", f"{failed:,} / {lost:,}"))
        if pending:
            facts.append(("Never reported", f"{pending:,}"))
        duration = view.get("duration_seconds")
        if isinstance(duration, int | float):
            facts.append(("Duration", _duration(int(duration))))
        interruptions = view.get("interruptions")
        if isinstance(interruptions, int):
            facts.append(("Spot interruptions", f"{interruptions:,}"))
        cost = _cost(view.get("cost"))
        if cost is not None:
            facts.append(("Cost", cost))
        items = self._examples(array_id, "failed", failed) + self._examples(array_id, "lost", lost)
        links = [
            (
                "Dashboard",
                f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region="
                f"{self.region}#dashboards/dashboard/{quote(array_dashboard_name(array_id))}",
            )
        ]
        if self.web_view_url:
            links.append(
                ("Web view", f"{self.web_view_url.rstrip('/')}/#/arrays/{quote(array_id, safe='')}")
            )
        lines = [f"{label}: {value}" for label, value in facts]
        return Notice(
            notice_id=f"report:{array_id}",
            kind="array_report",
            event_type="array_finished",
            severity=signal.severity,
            subject=subject,
            text="\n".join(lines),
            count=1,
            array_id=array_id,
            array_name=_text(view.get("name")),
            owner=signal.owner,
            first_at=signal.at,
            last_at=signal.at,
            facts=tuple(facts),
            items=tuple(items),
            links=tuple(links),
            details={
                "workers": dict(workers),
                "tasks_completed": done_tasks,
                "duration_seconds": duration,
                "interruptions": interruptions,
                "cost_usd": (view.get("cost") or {}).get("usd") if cost else None,
            },
        )

    def _examples(self, array_id: str, status: str, count: int) -> list[tuple[str, str]]:
        """The first `EXAMPLES` workers of `status`, each with its last message."""
        if count <= 0:
            return []
        try:
            rows, _ = self.rows.workers(
                array_id, status, EXAMPLES, None, self.clock(), self.stall_after
            )
        except ClientError as exc:  # the report goes out without the examples
            logger.warning(
                "array report without its examples",
                extra={"array_id": array_id, "error": exc.response["Error"]["Code"]},
            )
            return []
        found = []
        for row in rows:
            what = _text(row.get("message")) or _text(row.get("lost_cause")) or "no message"
            code = row.get("exit_code")
            if isinstance(code, int):
                what = f"exit {code}: {what}"
            found.append((f"{status} task {row.get('task_index')}", what[:MESSAGE_MAX]))
        if count > len(found):
            found.append((f"{status}", f"and {count - len(found):,} more"))
        return found


def _cost(value: Any) -> str | None:
    """'$12.34' from the progress body's cost, or None before any tick priced it."""
    if not isinstance(value, Mapping) or value.get("price_source") in (None, "none"):
        return None
    usd = value.get("usd")
    return f"${float(usd):,.2f}" if isinstance(usd, int | float) else None


def _duration(seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
