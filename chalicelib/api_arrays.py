"""The array routes of the HTTP API (SPEC §7), as a Chalice blueprint.

`GET /arrays/{array_id}/progress` reads one summary item whatever the array's size;
`GET /arrays` pages through the summaries; `GET /arrays/{array_id}/workers` pages
through one array's rows with a Query. Bad input is a 400, an unknown array a 404,
never a 500. Every route requires IAM (SigV4) authorization when deployed.

Per-user isolation (`chalicelib.access`): a caller who is not a fleet-wide reader sees
only arrays registered to them (the owner of an array is the `spawn:iam-user` of its
instances). Another user's array answers exactly as an unknown one, 404. Such a caller's
`GET /arrays` is a Query of the `owner-arrays` index plus one BatchGetItem of the page's
summaries, so its cost is one page's, however many arrays others have. Cursors are bound
to the caller, so one minted for someone else is refused.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from chalice.app import (
    BadRequestError,
    Blueprint,
    ForbiddenError,
    IAMAuthorizer,
    NotFoundError,
    Request,
)

from chalicelib.access import NoIdentity, Viewer, viewer_for
from chalicelib.cursors import CursorCodec, InvalidCursor
from chalicelib.progress import Summary, progress_view
from chalicelib.settings import Settings
from chalicelib.stats import ArrayRecord
from chalicelib.summaries import ProgressRows, SummaryStore, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ARRAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LIMIT = re.compile(r"^[0-9]{1,3}$")
LIMIT_DEFAULT = 50
LIMIT_MAX = 100
WORKER_STATUSES = ("running", "completed", "failed", "lost", "invalid")

arrays_api = Blueprint(__name__)
_iam = IAMAuthorizer()


class ArrayDirectory(Protocol):
    """Array registrations (name, declared size, owner); `chalicelib.stats.Stats`."""

    def array_record(self, array_id: str) -> ArrayRecord | None: ...

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
    """

    store: SummaryStore
    dynamodb: DynamoDBClient
    settings: Settings
    cursor_secret: bytes
    arrays: ArrayDirectory
    clock: Callable[[], datetime] = utc_now


def deps() -> ArraysDeps:
    """The process-wide dependencies, from `chalicelib.runtime.arrays_deps()`.

    Imported on first request because runtime builds `ArraysDeps` from this module; a
    top-level import would be circular. Tests replace this function.
    """
    runtime = importlib.import_module("chalicelib.runtime")
    provider: Callable[[], ArraysDeps] = runtime.arrays_deps
    return provider()


def path_param(value: str) -> str:
    """A path parameter as the caller meant it: percent-decoded, exactly once.

    API Gateway REST APIs hand path parameters to the Lambda still percent-encoded
    (aws/chalice#688, #511), and so does `chalice local`: the CLI's `job%3Arender-...`
    arrives as written. Decoding once means `%253A` becomes `%3A`, which validation
    then refuses, as it refuses anything decoded from bytes that are not UTF-8.

    >>> path_param("job%3Arender-20260127-a1b2c3")
    'job:render-20260127-a1b2c3'
    """
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise BadRequestError("path parameters must be percent-encoded UTF-8") from None


def array_id_param(value: str) -> str:
    """The `array_id` path parameter as API Gateway delivers it (still encoded): decoded
    once (`path_param`), then checked whole (400 otherwise)."""
    value = path_param(value)
    if not ARRAY_ID.fullmatch(value):
        raise BadRequestError(
            "array_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def _params() -> dict[str, str]:
    return dict(arrays_api.current_request.query_params or {})


def request_viewer(request: Request, settings: Settings) -> Viewer:
    """Who is asking, from the request context API Gateway fills in with IAM auth.

    Raises:
        ForbiddenError: isolation is on and the request carries no IAM identity.
    """
    context = request.context if isinstance(request.context, dict) else {}
    try:
        return viewer_for(context.get("identity"), settings.api_isolation, settings.fleet_readers)
    except NoIdentity as exc:
        raise ForbiddenError(f"{exc}; with API_ISOLATION=iam it may see nothing") from None


def visible_record(d: ArraysDeps, viewer: Viewer, array_id: str) -> ArrayRecord | None:
    """The array's registration; 404, exactly as for an unknown array, when the viewer
    may not see it."""
    record = d.arrays.array_record(array_id)
    if not viewer.may_see(record.owner if record else None):
        raise NotFoundError(f"array {array_id} is unknown")
    return record


def limit_param(params: dict[str, str], default: int = LIMIT_DEFAULT) -> int:
    """The `limit` query parameter: an integer from 1 to 100 (400 otherwise)."""
    raw = params.get("limit")
    if raw is None:
        return default
    if not LIMIT.fullmatch(raw) or not 1 <= int(raw) <= LIMIT_MAX:
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
    d = deps()
    viewer = request_viewer(arrays_api.current_request, d.settings)
    array_id = array_id_param(array_id)
    record = visible_record(d, viewer, array_id)
    summary = d.store.get(array_id, consistent=False)
    if summary is None and record is None:
        raise NotFoundError(f"array {array_id} is unknown")
    return progress_view(
        summary or Summary.new(array_id),
        record.info if record else None,
        d.clock(),
        d.settings.stall_after_seconds,
    )


@arrays_api.route("/arrays", methods=["GET"], authorizer=_iam)
def list_arrays() -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(arrays_api.current_request, d.settings)
    params = _params()
    limit = limit_param(params)
    codec = CursorCodec(d.cursor_secret)
    scope = f"arrays:{viewer.scope}"
    key = _cursor_key(codec, params, scope)
    start = key.get("array_id") if key else None
    if start is not None and not isinstance(start, str):
        raise BadRequestError("cursor is invalid")
    now, stall_after = d.clock(), d.settings.stall_after_seconds
    if viewer.everything:
        summaries, after = d.store.list_page(limit, start)
        views = []
        for summary in summaries:
            record = d.arrays.array_record(summary.array_id)
            views.append(progress_view(summary, record.info if record else None, now, stall_after))
    else:
        # The caller's own arrays, including those whose workers have not reported yet.
        records, after = d.arrays.arrays_of(viewer.owner, limit, start)
        found = d.store.get_many([r.array_id for r in records])
        views = [
            progress_view(
                found.get(r.array_id) or Summary.new(r.array_id), r.info, now, stall_after
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
