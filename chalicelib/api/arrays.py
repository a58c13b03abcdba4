"""The array routes of the HTTP API, as a Chalice blueprint.

`GET /arrays/{array_id}/progress` reads one summary item whatever the array's size;
`GET /arrays` pages the summaries (for an isolated caller, a Query of `owner-arrays`
and one BatchGetItem); `/workers` pages one array's rows with a Query. Bad input is a
400, an unknown array (or another user's) a 404, never a 500; cursors are bound to the
caller. Details: docs/api.md ("Per-user isolation").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from chalice.app import BadRequestError, Blueprint, IAMAuthorizer, NotFoundError

from chalicelib.api.cursors import CursorCodec
from chalicelib.api.deps import ArraysDeps, launch_failures_view, visible_record
from chalicelib.api.params import (
    WORKER_STATUSES,
    array_id_param,
    cursor_key,
    limit_param,
    request_viewer,
)
from chalicelib.container import current
from chalicelib.progress.billed import billed_view
from chalicelib.progress.summary import Summary, progress_view
from chalicelib.progress.workers import ProgressRows

arrays_api = Blueprint(__name__)
_iam = IAMAuthorizer()


def _params() -> dict[str, str]:
    return dict(arrays_api.current_request.query_params or {})


def deps() -> ArraysDeps:
    """What the routes read, from the installed container."""
    return current().arrays_deps


@arrays_api.route("/arrays/{array_id}/progress", methods=["GET"], authorizer=_iam)
def array_progress(array_id: str) -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(arrays_api.current_request, d.settings)
    array_id = array_id_param(array_id)
    record = visible_record(d, viewer, array_id)
    summary = d.store.get(array_id, consistent=False)
    if summary is None and record is None:
        raise NotFoundError(f"array {array_id} is unknown")
    interruptions = d.arrays.arrays_interruptions([array_id]).get(array_id, 0)
    view = progress_view(
        summary or Summary.new(array_id),
        record.info if record else None,
        d.clock(),
        d.settings.stall_after_seconds,
        interruptions,
        d.array_costs([array_id]).get(array_id),
    )
    view["launch_failures"] = launch_failures_view(d, array_id)
    return billed_view(view, d.billed)


@arrays_api.route("/arrays", methods=["GET"], authorizer=_iam)
def list_arrays() -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(arrays_api.current_request, d.settings)
    params = _params()
    limit = limit_param(params)
    codec = CursorCodec(d.cursor_secret)
    scope = f"arrays:{viewer.scope}"
    key = cursor_key(codec, params, scope)
    start = key.get("array_id") if key else None
    if start is not None and not isinstance(start, str):
        raise BadRequestError("cursor is invalid")
    now, stall_after = d.clock(), d.settings.stall_after_seconds
    if viewer.everything:
        summaries, after = d.store.list_page(limit, start)
        counted = d.arrays.arrays_interruptions(s.array_id for s in summaries)
        costs = d.array_costs(s.array_id for s in summaries)
        views = []
        for summary in summaries:
            record = d.arrays.array_record(summary.array_id)
            info = record.info if record else None
            views.append(
                progress_view(
                    summary,
                    info,
                    now,
                    stall_after,
                    counted.get(summary.array_id, 0),
                    costs.get(summary.array_id),
                )
            )
    else:
        # The caller's own arrays, including those whose workers have not reported yet.
        records, after = d.arrays.arrays_of(viewer.owner, limit, start)
        found = d.store.get_many([r.array_id for r in records])
        counted = d.arrays.arrays_interruptions(r.array_id for r in records)
        costs = d.array_costs(r.array_id for r in records)
        views = [
            progress_view(
                found.get(r.array_id) or Summary.new(r.array_id),
                r.info,
                now,
                stall_after,
                counted.get(r.array_id, 0),
                costs.get(r.array_id),
            )
            for r in records
        ]
    return {
        "arrays": views,
        "next": None if after is None else codec.encode({"array_id": after}, scope),
    }


@arrays_api.route("/arrays/{array_id}/workers", methods=["GET"], authorizer=_iam)
def array_workers(array_id: str) -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(arrays_api.current_request, d.settings)
    array_id = array_id_param(array_id)
    params = _params()
    limit = limit_param(params)
    status = params.get("status") or None
    if status is not None and status not in WORKER_STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(WORKER_STATUSES)}")
    if not viewer.everything:
        visible_record(d, viewer, array_id)
    codec = CursorCodec(d.cursor_secret)
    scope = f"workers:{array_id}:{status or ''}:{viewer.scope}"
    key = cursor_key(codec, params, scope)
    after = None if key is None else _task_index(key.get("task_index"))
    rows = ProgressRows(d.dynamodb, d.settings.progress_table)
    workers, resume = rows.workers(
        array_id, status, limit, after, d.clock(), d.settings.stall_after_seconds
    )
    # An empty first page may mean an unknown array: only then is the summary read.
    if (
        not workers
        and key is None
        and d.store.get(array_id, consistent=False) is None
        and d.arrays.array_record(array_id) is None
    ):
        raise NotFoundError(f"array {array_id} is unknown")
    return {
        "workers": workers,
        "next": None if resume is None else codec.encode({"task_index": resume}, scope),
    }


def _task_index(value: Any) -> str:
    """The resume key from a cursor, checked to be a DynamoDB number."""
    try:
        if isinstance(value, str) and Decimal(value).is_finite():
            return value
    except InvalidOperation:
        pass
    raise BadRequestError("cursor is invalid")
