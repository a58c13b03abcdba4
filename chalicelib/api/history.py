"""`GET /arrays/{array_id}/history?since=` (SPEC §7): an array's counts over time.

One BatchGetItem of the array's two history items (`chalicelib.progress.history`), whatever the
array's size; only an array without history costs the two reads that tell an unknown
array (404) from one that has not been ticked yet (an empty list). A malformed id or
`since` is a 400. IAM (SigV4) authorization when deployed, like every array route, and
the same per-user isolation: another user's array is a 404.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, IAMAuthorizer, NotFoundError

from chalicelib.api.deps import HistoryDeps, visible_record
from chalicelib.api.params import array_id_param, request_viewer, since_param
from chalicelib.container import current

history_api = Blueprint(__name__)
_iam = IAMAuthorizer()


def deps() -> HistoryDeps:
    """What the route reads, from the installed container."""
    return current().history_deps


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
