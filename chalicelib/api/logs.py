"""`GET /arrays/{id}/workers/{task_index}/logs` and `GET /arrays/{id}/errors` (SPEC §16).

A worker's streams are found from its progress row (`chalicelib.worker_logs`); the
lines come newest page first, oldest first within a page, and the cursor (signed, bound
to the caller, the worker and the grep) pages back in time. Every read is bounded: a
time window (`since`: at most 14 days back, the default for a tail; 24 h for a grep or
errors), a page size, a byte budget and a number of CloudWatch Logs calls. Another
user's array is a 404; bad input a 400; CloudWatch Logs throttling past the client's
retries a 429. Details: docs/logs.md.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from chalice.app import (
    BadRequestError,
    Blueprint,
    IAMAuthorizer,
    NotFoundError,
    TooManyRequestsError,
)

from chalicelib.api.cursors import CursorCodec
from chalicelib.api.deps import LogsDeps, visible_record
from chalicelib.api.params import array_id_param, cursor_key, path_param, request_viewer
from chalicelib.container import current
from chalicelib.contract.rows import iso_ms, parse_utc
from chalicelib.fleet.events import epoch_ms
from chalicelib.progress.workers import row_status
from chalicelib.worker_logs.bounds import (
    ERRORS_LIMIT_DEFAULT,
    ERRORS_LIMIT_MAX,
    GREP_FORBIDDEN,
    GREP_MAX,
    LOG_CALLS_MAX,
    LOG_LIMIT_DEFAULT,
    LOG_LIMIT_MAX,
    WINDOW_DEFAULT_HOURS,
    WINDOW_MAX_DAYS,
)
from chalicelib.worker_logs.reader import Budget, LogsThrottled, Position

logs_api = Blueprint(__name__)
_iam = IAMAuthorizer()
TASK_INDEX = re.compile(r"^[0-9]{1,9}$")
NUMBER = re.compile(r"^[0-9]{1,4}$")


def deps() -> LogsDeps:
    """What the routes read, from the installed container."""
    return current().logs_deps


def _params() -> dict[str, str]:
    return dict(logs_api.current_request.query_params or {})


def task_index_param(value: str) -> int:
    """The `task_index` path parameter: a whole number below 10⁹ (400 otherwise)."""
    value = path_param(value)
    if not TASK_INDEX.fullmatch(value):
        raise BadRequestError("task_index must be a whole number from 0 to 999999999")
    return int(value)


def bounded_limit(params: dict[str, str], default: int, most: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not NUMBER.fullmatch(raw) or not 1 <= int(raw) <= most:
        raise BadRequestError(f"limit must be an integer from 1 to {most}")
    return int(raw)


def grep_param(params: dict[str, str]) -> str | None:
    """`grep`: 1-128 printable characters, no double quote or backslash (it is sent
    as one quoted phrase)."""
    raw = params.get("grep")
    if raw is None:
        return None
    if (
        len(raw) > GREP_MAX
        or not raw.isprintable()
        or any(c in GREP_FORBIDDEN for c in raw)
        or not raw.strip()
    ):
        raise BadRequestError(
            f"grep must be 1-{GREP_MAX} printable characters without '\"' or '\\'"
        )
    return raw


def window_start(params: dict[str, str], now: datetime, default: timedelta | None = None) -> int:
    """`since` as epoch ms: default `default` ago (24 h); 400 if malformed or more than
    14 days ago."""
    oldest = epoch_ms(now - timedelta(days=WINDOW_MAX_DAYS))
    raw = params.get("since")
    if raw is None:
        return epoch_ms(now - (default or timedelta(hours=WINDOW_DEFAULT_HOURS)))
    start = parse_utc(raw)
    if start is None:
        raise BadRequestError("since must be an ISO-8601 UTC time, e.g. 2026-01-27T10:00:00Z")
    if start < oldest:
        raise BadRequestError(f"since must be within the last {WINDOW_MAX_DAYS} days")
    return start


def _position(key: dict[str, Any] | None, now_ms: int, start_ms: int) -> Position:
    if key is None:
        return Position(now_ms, 0, start_ms)
    values: list[int] = []
    for name in ("b", "s", "f"):
        value = key.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequestError("cursor is invalid")
        values.append(value)
    return Position(*values)


def _unknown_array(d: LogsDeps, array_id: str) -> bool:
    return (
        d.arrays.arrays.array_record(array_id) is None
        and d.arrays.store.get(array_id, consistent=False) is None
    )


@logs_api.route("/arrays/{array_id}/workers/{task_index}/logs", methods=["GET"], authorizer=_iam)
def worker_logs(array_id: str, task_index: str) -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(logs_api.current_request, d.arrays.settings)
    array_id = array_id_param(array_id)
    index = task_index_param(task_index)
    params = _params()
    limit = bounded_limit(params, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX)
    grep = grep_param(params)
    now = d.arrays.clock()
    # A tail reads back from the newest line whatever the window, so it looks as far
    # back as allowed; a grep scans its window, so it looks back 24 h unless told.
    tail_window = None if grep else timedelta(days=WINDOW_MAX_DAYS)
    start = window_start(params, now, tail_window)
    visible_record(d.arrays, viewer, array_id)
    codec = CursorCodec(d.arrays.cursor_secret)
    scope = f"logs:{array_id}:{index}:{grep or ''}:{viewer.scope}"
    position = _position(cursor_key(codec, params, scope), epoch_ms(now), start)
    row = d.rows.row(array_id, index)
    instances = [str(row[k]) for k in ("instance_id", "lost_instance_id") if row and row.get(k)]
    budget = Budget(LOG_CALLS_MAX)
    try:
        streams = d.logs.streams_of(array_id, index, instances, budget)
        if row is None and not streams:
            if _unknown_array(d, array_id):
                raise NotFoundError(f"array {array_id} is unknown")
            raise NotFoundError(f"worker {index} of array {array_id} is unknown")
        page = d.logs.page(streams, position, limit, budget, grep)
    except LogsThrottled:
        raise TooManyRequestsError("CloudWatch Logs is throttling; retry shortly") from None
    document: dict[str, Any] = {
        "lines": [{"at": iso_ms(line.at_ms), "message": line.message} for line in page.lines],
        "next": None
        if page.next is None
        else codec.encode(
            {"b": page.next.before_ms, "s": page.next.seen, "f": page.next.start_ms}, scope
        ),
    }
    # The worker's status from the same row, so `logs --follow` knows when it ended.
    document["status"] = None if row is None else row_status(row)
    if page.truncated:
        document["truncated"] = True
    return document


@logs_api.route("/arrays/{array_id}/errors", methods=["GET"], authorizer=_iam)
def array_errors(array_id: str) -> dict[str, Any]:
    d = deps()
    viewer = request_viewer(logs_api.current_request, d.arrays.settings)
    array_id = array_id_param(array_id)
    params = _params()
    limit = bounded_limit(params, ERRORS_LIMIT_DEFAULT, ERRORS_LIMIT_MAX)
    now = d.arrays.clock()
    start = window_start(params, now)
    record = visible_record(d.arrays, viewer, array_id)
    if record is None and d.arrays.store.get(array_id, consistent=False) is None:
        raise NotFoundError(f"array {array_id} is unknown")
    end = epoch_ms(now)
    try:
        report = d.logs.errors(array_id, start, end, limit)
    except LogsThrottled:
        raise TooManyRequestsError("CloudWatch Logs is throttling; retry shortly") from None
    return {
        "errors": [worker.to_json() for worker in report.workers],
        "workers_with_errors": report.workers_with_errors,
        "scanned": {"from": iso_ms(start), "to": iso_ms(end), "complete": report.complete},
    }
