"""Which arrays get a dashboard, and when each one finished.

An array is seen once its first progress row reaches the arrays table (`ARRAYS_TABLE`,
one summary item per array); its dashboard goes `ARRAY_DASHBOARD_RETENTION_HOURS`
after it finished. `finished_at` is the one place that decides when that was: today a
summary whose final figures are published (`final_published`) finished at its last
applied change. Adapt that function, and only it, when summaries learn more about how
an array ends.

The table is read with a projection of the few attributes needed, so a minute's check
reads a few bytes per array instead of whole summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ATTRIBUTES = ("array_id", "final_published", "last_change_ms", "last_update_ms")
_deserialize = TypeDeserializer().deserialize


@dataclass(frozen=True)
class ArrayState:
    """An array known to the system, and when it finished (None while it runs)."""

    array_id: str
    finished_at: datetime | None = None

    def expired(self, now: datetime, retention: timedelta) -> bool:
        """Finished at least `retention` ago: its dashboard goes."""
        return self.finished_at is not None and now - self.finished_at >= retention


def finished_at(summary: Mapping[str, Any]) -> datetime | None:
    """When an array finished, from its summary's attributes (plain values), or None."""
    if not summary.get("final_published"):
        return None
    last = summary.get("last_change_ms") or summary.get("last_update_ms")
    if last is None:
        return None
    return datetime.fromtimestamp(int(last) / 1000, tz=UTC)


def read_arrays(dynamodb: DynamoDBClient, table: str) -> list[ArrayState]:
    """Every array in the arrays table, page by page."""
    names = {f"#a{i}": attribute for i, attribute in enumerate(ATTRIBUTES)}
    found: list[ArrayState] = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
    ):
        for item in page["Items"]:
            values = {k: _deserialize(v) for k, v in item.items()}
            found.append(ArrayState(str(values["array_id"]), finished_at(values)))
    return found
