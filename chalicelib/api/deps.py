"""What the array and history routes read, as data: built by the container per request.

Kept apart from the route modules so the container (`chalicelib.container`) can build
them without importing a Blueprint, and tests can hand the routes fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalice.app import NotFoundError

from chalicelib.core.access import Viewer
from chalicelib.core.settings import Settings
from chalicelib.cost.store import CostStore
from chalicelib.fleet.registrations import ArrayRecord
from chalicelib.progress.history import HistoryStore
from chalicelib.progress.store import SummaryStore, utc_now
from chalicelib.progress.workers import ProgressRows
from chalicelib.worker_logs.reader import WorkerLogs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ArrayDirectory(Protocol):
    """Array registrations (name, declared size, owner) and interruption counts;
    `chalicelib.fleet.stats.Stats`."""

    def array_record(self, array_id: str) -> ArrayRecord | None: ...

    def arrays_interruptions(self, array_ids: Iterable[str]) -> dict[str, int]: ...

    def arrays_of(
        self, owner: str, limit: int, after: str | None = None
    ) -> tuple[list[ArrayRecord], str | None]: ...


class LaunchFailureCounts(Protocol):
    """An array's launch failures (SPEC §15); `chalicelib.fleet.launch_failures`."""

    def array_view(self, array_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ArraysDeps:
    """What the array routes need.

    Attributes:
        store: the arrays table.
        dynamodb: a DynamoDB client, for Queries of the progress table.
        settings: `PROGRESS_TABLE`, `STALL_AFTER_SECONDS`, `API_ISOLATION`,
            `FLEET_READERS`.
        cursor_secret: HMAC key for cursors; the same in every process of a stage.
        arrays: array registrations from the instances' spawn tags.
        clock: the current time (default: `utc_now`).
        launch_failures: each array's failed launches (None: shown as none).
        billed: an array's Cost Explorer figure, once known (`BilledCosts.stored`).
        costs: the arrays' cost documents (default: none; `cost` then reads as zero).
    """

    store: SummaryStore
    dynamodb: DynamoDBClient
    settings: Settings
    cursor_secret: bytes
    arrays: ArrayDirectory
    clock: Callable[[], datetime] = utc_now
    launch_failures: LaunchFailureCounts | None = None
    billed: Callable[[str], dict[str, Any] | None] | None = None
    costs: CostStore | None = None

    def array_costs(self, array_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored cost documents of these arrays (one BatchGetItem per 100)."""
        return {} if self.costs is None else self.costs.array_costs(array_ids)


@dataclass(frozen=True)
class HistoryDeps:
    """What the history route needs: the history items and the array routes' deps
    (to tell an unknown array from a new one)."""

    history: HistoryStore
    arrays: ArraysDeps


@dataclass(frozen=True)
class LogsDeps:
    """What the log routes need: the array routes' deps, the progress rows (a worker's
    instances) and the workers' log group."""

    arrays: ArraysDeps
    rows: ProgressRows
    logs: WorkerLogs


def visible_record(d: ArraysDeps, viewer: Viewer, array_id: str) -> ArrayRecord | None:
    """The array's registration; 404, exactly as for an unknown array, when the viewer
    may not see it."""
    record = d.arrays.array_record(array_id)
    if not viewer.may_see(record.owner if record else None):
        raise NotFoundError(f"array {array_id} is unknown")
    return record


NO_LAUNCH_FAILURES: dict[str, Any] = {"total": 0, "by_code": {}, "by_type_zone": [], "last": None}


def launch_failures_view(d: ArraysDeps, array_id: str) -> dict[str, Any]:
    """The array's `launch_failures` (SPEC §15), zeros when none are counted."""
    if d.launch_failures is None:
        return dict(NO_LAUNCH_FAILURES)
    return d.launch_failures.array_view(array_id)
