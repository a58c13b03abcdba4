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
        costs: the arrays' cost documents (default: none; `cost` then reads as zero).
    """

    store: SummaryStore
    dynamodb: DynamoDBClient
    settings: Settings
    cursor_secret: bytes
    arrays: ArrayDirectory
    clock: Callable[[], datetime] = utc_now
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


def visible_record(d: ArraysDeps, viewer: Viewer, array_id: str) -> ArrayRecord | None:
    """The array's registration; 404, exactly as for an unknown array, when the viewer
    may not see it."""
    record = d.arrays.array_record(array_id)
    if not viewer.may_see(record.owner if record else None):
        raise NotFoundError(f"array {array_id} is unknown")
    return record
