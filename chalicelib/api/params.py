"""The HTTP API's request parameters and caller, checked at the edge.

Every route reads its input through these: a malformed value is a 400 naming what is
allowed, never a 500 deeper in. `request_viewer` says who is asking (per-user
isolation, `chalicelib.core.access`). The limits and patterns are also what the
OpenAPI description (`chalicelib.contract.openapi`) publishes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from chalice.app import BadRequestError, ForbiddenError, Request

from chalicelib.api.cursors import CursorCodec, InvalidCursor
from chalicelib.contract.rows import parse_utc
from chalicelib.core.access import NoIdentity, Viewer, viewer_for
from chalicelib.core.settings import Settings

ARRAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LIMIT = re.compile(r"^[0-9]{1,3}$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,30}\.[a-z0-9-]{1,30}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
LIMIT_DEFAULT = 50
ALERTS_LIMIT_DEFAULT = 20
LIMIT_MAX = 100
WORKER_STATUSES = ("running", "completed", "failed", "lost", "invalid")


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


def limit_param(params: dict[str, str], default: int = LIMIT_DEFAULT) -> int:
    """The `limit` query parameter: an integer from 1 to 100 (400 otherwise)."""
    raw = params.get("limit")
    if raw is None:
        return default
    if not LIMIT.fullmatch(raw) or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadRequestError(f"limit must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def cursor_key(codec: CursorCodec, params: dict[str, str], scope: str) -> dict[str, Any] | None:
    """The `cursor` query parameter, decoded for `scope` (None when absent; 400 when
    invalid or minted for another scope)."""
    raw = params.get("cursor")
    if raw is None:
        return None
    try:
        return codec.decode(raw, scope)
    except InvalidCursor as exc:
        raise BadRequestError(f"cursor is invalid: {exc}") from None


def since_param(params: dict[str, str]) -> datetime | None:
    """The `since` query parameter: an ISO-8601 UTC time (400 otherwise)."""
    raw = params.get("since")
    if raw is None:
        return None
    milliseconds = parse_utc(raw)
    if milliseconds is None:
        raise BadRequestError("since must be an ISO-8601 UTC time, e.g. 2026-01-27T10:00:00Z")
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def choice_param(params: dict[str, str], name: str, allowed: Iterable[str]) -> str | None:
    """An optional query parameter that must be one of `allowed` (400 otherwise)."""
    raw = params.get(name)
    if raw is None:
        return None
    choices = sorted(allowed)
    if raw not in choices:
        raise BadRequestError(f"{name} must be one of {', '.join(choices)}")
    return raw


def array_id_query(params: dict[str, str]) -> str | None:
    """The optional `array_id` query parameter, checked as the path parameter is."""
    raw = params.get("array_id")
    if raw is None:
        return None
    if not ARRAY_ID.fullmatch(raw):
        raise BadRequestError(
            "array_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return raw
