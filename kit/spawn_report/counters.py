"""The fleet's task and error counters, from the running totals in workers' progress.

A progress report carries totals (`tasks_completed`, `error_count` so far). The fleet
alarms (`spawn-fleet-error-rate`, `spawn-low-throughput`) and the `spawn-fleet`
dashboard sum `Spawn/Workers` `TasksCompleted` and `ErrorCount` (no dimension) over a
period, so each report publishes what changed since the same worker's previous one:

1. the previous totals of each worker (array id, task index) are kept in `counters.json`
   in the spool directory, read and rewritten under the spool's lock, so separate
   `spawn-report progress` processes continue where the last one stopped;
2. a worker's first report counts its totals;
3. tasks going backwards is a run from scratch (a task re-run on the same spool): both
   counters count from zero. Errors going backwards alone count errors from zero. An
   increment is never negative;
4. a report without an error count adds no errors and keeps the error total;
5. the file keeps the workers that reported within `KEEP_SECONDS`, at most the
   `KEEP_WORKERS` most recent: an instance that runs array after array through one
   spool would otherwise grow it without end. A worker silent for longer than that
   counts its totals again on its next report (a week: longer than spawn's arrays).

A report skipped by sampling (`--every-n-tasks`) never reaches this module, so its
increments arrive with the next report that is recorded.

Example:
    >>> advance(Totals(10, 1), tasks=25, errors=2)
    (Totals(tasks=15, errors=1), Totals(tasks=25, errors=2))
    >>> advance(Totals(40, 3), tasks=5, errors=None)[0]  # re-run from scratch
    Totals(tasks=5, errors=0)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spawn_report.batching import metric_entry

logger = logging.getLogger(__name__)

NAMESPACE = "Spawn/Workers"
TASKS = "TasksCompleted"
ERRORS = "ErrorCount"
STATE_FILE = "counters.json"
KEEP_SECONDS = 7 * 24 * 3600
KEEP_WORKERS = 256


@dataclass(frozen=True)
class Totals:
    """A worker's tasks completed and errors: so far, or since its previous report."""

    tasks: int
    errors: int


def advance(previous: Totals | None, tasks: int, errors: int | None) -> tuple[Totals, Totals]:
    """(increments since `previous`, the new totals) for a report of `tasks` and `errors`."""
    base = Totals(0, 0) if previous is None or tasks < previous.tasks else previous
    error_total = base.errors if errors is None else errors
    error_base = base.errors if error_total >= base.errors else 0
    return Totals(tasks - base.tasks, error_total - error_base), Totals(tasks, error_total)


def entries(increments: Totals, t: float) -> list[dict[str, Any]]:
    """The spool entries of one report's increments: the fleet-wide series (no
    dimension), published even when zero so a working but idle fleet shows 0."""
    return [
        metric_entry(NAMESPACE, TASKS, increments.tasks, "Count", {}, t),
        metric_entry(NAMESPACE, ERRORS, increments.errors, "Count", {}, t),
    ]


def _count(value: object) -> int | None:
    """`value` if it is a count (an int ≥ 0), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


class CounterState:
    """The last reported totals of every worker that reported through `directory`.

    The caller holds the spool's lock (`Spool.locked`) from `read` to `write`.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        # When each worker read last reported (epoch seconds; None in older files).
        self.seen: dict[tuple[str, int], float | None] = {}
        # The `tasks_total` each worker last declared, if any (`spawn-report run` keeps
        # it in the final row it writes for the job).
        self.declared: dict[tuple[str, int], int] = {}

    def read(self) -> dict[tuple[str, int], Totals]:
        """Every worker's totals; an unreadable file (or record) counts as never seen,
        so those workers' next reports count their totals again."""
        try:
            records = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("%s unreadable (%s): counting from the reported totals", self.path, exc)
            return {}
        known: dict[tuple[str, int], Totals] = {}
        for record in records if isinstance(records, list) else []:
            if not isinstance(record, dict):
                continue
            array_id = record.get("array_id")
            index, tasks, errors = (
                _count(record.get(k)) for k in ("task_index", "tasks", "errors")
            )
            if (
                isinstance(array_id, str)
                and index is not None
                and tasks is not None
                and errors is not None
            ):
                known[(array_id, index)] = Totals(tasks, errors)
                total = _count(record.get("total"))
                if total is not None:
                    self.declared[(array_id, index)] = total
                seen = record.get("t")
                self.seen[(array_id, index)] = seen if isinstance(seen, (int, float)) else None
        return known

    def write(
        self, known: dict[tuple[str, int], Totals], reported: tuple[str, int], now: float
    ) -> None:
        """Replace the file at once (a temporary file renamed over it), noting that
        `reported` reported `now` and keeping only recent workers (rule 5). A worker
        read without a time (an older file) counts as seen now."""
        self.seen[reported] = now
        recent = sorted(
            (seen, key)
            for key in known
            if (seen := self.seen.get(key) or now) >= now - KEEP_SECONDS
        )[-KEEP_WORKERS:]
        records = [
            {
                "array_id": a,
                "task_index": i,
                "tasks": known[(a, i)].tasks,
                "errors": known[(a, i)].errors,
                "t": seen,
                **({"total": self.declared[(a, i)]} if (a, i) in self.declared else {}),
            }
            for seen, (a, i) in sorted(recent, key=lambda item: item[1])
        ]
        temporary = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(records, handle, separators=(",", ":"))
        os.replace(temporary, self.path)
