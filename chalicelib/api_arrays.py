"""The array routes of the HTTP API (SPEC §7), as a Chalice blueprint.

`GET /arrays/{array_id}/progress` reads one summary item whatever the array's size;
`GET /arrays` pages through the summaries; `GET /arrays/{array_id}/workers` pages
through one array's rows with a Query. Bad input is a 400, an unknown array a 404,
never a 500. Every route requires IAM (SigV4) authorization when deployed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from chalice.app import BadRequestError, Blueprint, IAMAuthorizer, NotFoundError

from chalicelib.cursors import CursorCodec, InvalidCursor
from chalicelib.progress import Summary, progress_view
from chalicelib.settings import Settings
from chalicelib.summaries import ArrayInfo, ProgressRows, SummaryStore, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ARRAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LIMIT = re.compile(r"^[0-9]{1,3}$")
LIMIT_DEFAULT = 50
LIMIT_MAX = 100
WORKER_STATUSES = ("running", "completed", "failed", "lost", "invalid")

arrays_api = Blueprint(__name__)
_iam = IAMAuthorizer()


@dataclass(frozen=True)
class ArraysDeps:
    """What the array routes need.

    Attributes:
        store: the arrays table.
        dynamodb: a DynamoDB client, for Queries of the progress table.
        settings: `PROGRESS_TABLE`, `STALL_AFTER_SECONDS`.
        cursor_secret: HMAC key for cursors; the same in every process of a stage.
        array_info: (name, declared size) of an array from the instances registry.
        clock: the current time (default: `utc_now`).
    """

    store: SummaryStore
    dynamodb: DynamoDBClient
    settings: Settings
    cursor_secret: bytes
    array_info: ArrayInfo
    clock: Callable[[], datetime] = utc_now


def deps() -> ArraysDeps:
    """The process-wide dependencies, from `chalicelib.runtime.arrays_deps()`.

    Imported on first request because runtime builds `ArraysDeps` from this module; a
    top-level import would be circular. Tests replace this function.
    """
    runtime = importlib.import_module("chalicelib.runtime")
    provider: Callable[[], ArraysDeps] = runtime.arrays_deps
    return provider()


def _array_id(value: str) -> str:
    if not ARRAY_ID.match(value):
        raise BadRequestError(
            "array_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def _params() -> dict[str, str]:
    return dict(arrays_api.current_request.query_params or {})


def limit_param(params: dict[str, str], default: int = LIMIT_DEFAULT) -> int:
    """The `limit` query parameter: an integer from 1 to 100 (400 otherwise)."""
    raw = params.get("limit")
    if raw is None:
        return default
    if not LIMIT.match(raw) or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadRequestError(f"limit must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def _cursor_key(codec: CursorCodec, params: dict[str, str], scope: str) -> dict[str, Any] | None:
    raw = params.get("cursor")
    if raw is None:
        return None
    try:
        return codec.decode(raw, scope)
    except InvalidCursor as exc:
        raise BadRequestError(f"cursor is invalid: {exc}") from None


@arrays_api.route("/arrays/{array_id}/progress", methods=["GET"], authorizer=_iam)
def array_progress(array_id: str) -> dict[str, Any]:
    array_id = _array_id(array_id)
    d = deps()
    summary = d.store.get(array_id, consistent=False)
    info = d.array_info(array_id)
    if summary is None and info is None:
        raise NotFoundError(f"array {array_id} is unknown")
    return progress_view(
        summary or Summary.new(array_id), info, d.clock(), d.settings.stall_after_seconds
    )


@arrays_api.route("/arrays", methods=["GET"], authorizer=_iam)
def list_arrays() -> dict[str, Any]:
    params = _params()
    limit = limit_param(params)
    d = deps()
    codec = CursorCodec(d.cursor_secret)
    key = _cursor_key(codec, params, "arrays")
    start = key.get("array_id") if key else None
    if start is not None and not isinstance(start, str):
        raise BadRequestError("cursor is invalid")
    summaries, after = d.store.list_page(limit, start)
    now = d.clock()
    return {
        "arrays": [
            progress_view(s, d.array_info(s.array_id), now, d.settings.stall_after_seconds)
            for s in summaries
        ],
        "next": None if after is None else codec.encode({"array_id": after}, "arrays"),
    }


@arrays_api.route("/arrays/{array_id}/workers", methods=["GET"], authorizer=_iam)
def array_workers(array_id: str) -> dict[str, Any]:
    array_id = _array_id(array_id)
    params = _params()
    limit = limit_param(params)
    status = params.get("status") or None
    if status is not None and status not in WORKER_STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(WORKER_STATUSES)}")
    d = deps()
    codec = CursorCodec(d.cursor_secret)
    scope = f"workers:{array_id}:{status or ''}"
    key = _cursor_key(codec, params, scope)
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
        and d.array_info(array_id) is None
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
