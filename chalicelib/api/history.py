"""`GET /arrays/{array_id}/history?since=` (SPEC §7): an array's counts over time.

One BatchGetItem of the array's two history items (`chalicelib.progress.history`), whatever the
array's size; only an array without history costs the two reads that tell an unknown
array (404) from one that has not been ticked yet (an empty list). A malformed id or
`since` is a 400. IAM (SigV4) authorization when deployed, like every array route, and
the same per-user isolation: another user's array is a 404.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalice.app import BadRequestError, Blueprint, IAMAuthorizer, NotFoundError

from chalicelib.api.arrays import ArraysDeps, array_id_param, request_viewer, visible_record
from chalicelib.contract.rows import parse_utc
from chalicelib.progress.history import HistoryStore

history_api = Blueprint(__name__)
_iam = IAMAuthorizer()


@dataclass(frozen=True)
class HistoryDeps:
    """What the history route needs: the history items and the array routes' deps
    (to tell an unknown array from a new one)."""

    history: HistoryStore
    arrays: ArraysDeps


def deps() -> HistoryDeps:
    """The process-wide dependencies (imported on first request, as in `api_arrays`).
    Tests replace this function."""
    runtime = importlib.import_module("chalicelib.core.container")
    provider: Callable[[], HistoryDeps] = runtime.history_deps
    return provider()


def since_param(params: dict[str, str]) -> datetime | None:
    """The `since` query parameter: an ISO-8601 UTC time (400 otherwise)."""
    raw = params.get("since")
    if raw is None:
        return None
    milliseconds = parse_utc(raw)
    if milliseconds is None:
        raise BadRequestError("since must be an ISO-8601 UTC time, e.g. 2026-01-27T10:00:00Z")
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


@history_api.route("/arrays/{array_id}/history", methods=["GET"], authorizer=_iam)
def array_history(array_id: str) -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(history_api.current_request, d.arrays.settings)
    array_id = array_id_param(array_id)
    since = since_param(dict(history_api.current_request.query_params or {}))
    record = visible_record(d.arrays, viewer, array_id)
    points = d.history.points(array_id, since, d.arrays.clock())
    if points is None:
        if record is None and d.arrays.store.get(array_id, consistent=False) is None:
            raise NotFoundError(f"array {array_id} is unknown")
        points = []
    return {"array_id": array_id, "points": [p.to_json() for p in points]}
