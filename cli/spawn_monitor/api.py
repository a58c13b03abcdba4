"""Finding the HTTP API, signing requests to it, and reading its pages.

The endpoint comes from `--endpoint`, else `SPAWN_MONITOR_ENDPOINT`, else the `ApiUrl`
output of the CloudFormation stack (`--stack`, default `spawn-fleet-monitor`).
Requests to a deployed stage are signed with SigV4 (service `execute-api`) using the
caller's own AWS credentials through botocore's signer; a loopback endpoint (the local
stack) is not signed unless asked (`--sign always`). Every failure becomes an
`ApiError` whose message is one line that says what to do.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_STACK = "spawn-fleet-monitor"
ENDPOINT_ENV = "SPAWN_MONITOR_ENDPOINT"
SIGN_MODES = ("auto", "always", "never")
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ApiError(Exception):
    """A failure to show the operator as one line (no traceback)."""


class NotFound(ApiError):
    """The API answered 404: an unknown array (or not this API at all)."""


@dataclass(frozen=True)
class Target:
    """Where the API is and how to reach it.

    Attributes:
        endpoint: base URL, without a trailing slash (e.g. `http://127.0.0.1:8000`).
        region: the region to sign for (None when unsigned).
        sign: whether to sign requests with SigV4.
    """

    endpoint: str
    region: str | None
    sign: bool


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_of(endpoint: str) -> str | None:
    """The region in an API Gateway host name, e.g. `abc.execute-api.eu-west-1.amazonaws.com`."""
    match = _EXECUTE_API_HOST.search(urlsplit(endpoint).hostname or "")
    return match.group(1) if match else None


def stack_outputs(session: boto3.Session, stack: str) -> dict[str, str]:
    """The outputs of a CloudFormation stack, by key."""
    try:
        found = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise ApiError(
            f"cannot read stack {stack} in {session.region_name or 'no region'}: {message}; "
            f"pass --stack NAME or --region, or give the API with --endpoint / {ENDPOINT_ENV}"
        ) from None
    except BotoCoreError as exc:
        raise ApiError(
            f"cannot read stack {stack}: {exc}; give the API with --endpoint or {ENDPOINT_ENV}"
        ) from None
    outputs = found[0].get("Outputs", []) if found else []
    return {o["OutputKey"]: o["OutputValue"] for o in outputs if "OutputKey" in o}


def locate(
    session: boto3.Session,
    endpoint: str | None,
    stack: str,
    sign: str = "auto",
    region: str | None = None,
) -> Target:
    """Find the API: `endpoint` (flag), `SPAWN_MONITOR_ENDPOINT`, or the stack's `ApiUrl`.

    Args:
        session: AWS credentials and region (for the stack lookup and for signing).
        endpoint: the `--endpoint` flag, if given.
        stack: the stack whose outputs name the API.
        sign: `auto` (sign unless the endpoint is loopback), `always` or `never`.
        region: the `--region` flag; else the endpoint's, the stack's or the session's.
    """
    chosen = endpoint or os.environ.get(ENDPOINT_ENV)
    stack_region = None
    if not chosen:
        outputs = stack_outputs(session, stack)
        if "ApiUrl" not in outputs:
            raise ApiError(f"stack {stack} has no ApiUrl output; give the API with --endpoint")
        chosen = outputs["ApiUrl"]
        stack_region = outputs.get("Region")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"endpoint {chosen!r} is not an http(s) URL, e.g. http://127.0.0.1:8000")
    signed = sign == "always" or (sign == "auto" and not is_loopback(chosen))
    where = region or region_of(chosen) or stack_region or session.region_name
    if signed and not where:
        raise ApiError("no AWS region to sign requests for: pass --region or set AWS_REGION")
    return Target(chosen.rstrip("/"), where if signed else None, signed)


def array_path(array_id: str, route: str) -> str:
    """`/arrays/{id}/{route}`, the id quoted whole (a malformed id is the API's 400)."""
    return f"/arrays/{quote(array_id, safe='')}/{route}"


class Api:
    """GET requests to the API, signed when the target says so.

    Args:
        target: where the API is (`locate`).
        session: credentials for signing (default: a new boto3 session).
        timeout: seconds per request.

    Example:
        >>> api = Api(locate(boto3.Session(), "http://127.0.0.1:8000", DEFAULT_STACK))
        >>> api.get("/fleet")["instances"]["running"]
        18
    """

    def __init__(
        self, target: Target, session: boto3.Session | None = None, timeout: float = 15.0
    ) -> None:
        self.target = target
        self.session = session or boto3.Session()
        self.timeout = timeout

    def headers(self, url: str) -> dict[str, str]:
        """Request headers for a GET of `url`, with a SigV4 signature when signing."""
        headers = {"Accept": "application/json", "User-Agent": "spawn-monitor"}
        if not self.target.sign:
            return headers
        credentials = self.session.get_credentials()
        if credentials is None:
            raise ApiError(
                f"no AWS credentials to sign requests to {self.target.endpoint}: configure a "
                "profile (AWS_PROFILE) or keys, or use --sign never for an unsigned local API"
            )
        request = AWSRequest(method="GET", url=url, headers=headers)
        region = self.target.region or ""  # `locate` always sets it when signing
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())

    def fetch(self, path: str) -> tuple[int, bytes]:
        """GET `path` (with its query); the status and body, whatever the status.

        Raises `ApiError` only when no answer came (unreachable, timeout).
        """
        url = self.target.endpoint + path
        request = urllib.request.Request(url, headers=self.headers(url), method="GET")  # noqa: S310 - http(s) checked in locate
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(
                f"cannot reach the API at {self.target.endpoint}: {reason}; is it running "
                f"(make run), and is --endpoint / {ENDPOINT_ENV} / --stack right?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        """The JSON body of a successful GET; an `ApiError` with the reason otherwise."""
        query = {k: v for k, v in params.items() if v is not None}
        full = f"{path}?{urlencode(query)}" if query else path
        status, body = self.fetch(full)
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if status == 200 and document is not None:
            return document
        raise self._error(full, status, document, body)

    def _error(self, path: str, status: int, document: Any, body: bytes) -> ApiError:
        detail = ""
        if isinstance(document, dict):
            detail = str(document.get("Message") or document.get("message") or "")
        detail = detail or body[:200].decode("utf-8", "replace").strip()
        detail = " ".join(detail.split())
        if status == 403:
            return ApiError(
                f"403 Forbidden from {self.target.endpoint}: {detail or 'access denied'}; check "
                "your AWS credentials (profile, expiry, IAM permission execute-api:Invoke) and "
                f"that the region ({self.target.region or 'unsigned'}) is the stack's (--region)"
            )
        if status == 404 and isinstance(document, dict) and "Code" in document:
            return NotFound(f"{detail} (404)")
        if status == 404:
            return NotFound(
                f"{path} not found (404) at {self.target.endpoint}: is this the "
                "spawn-fleet-monitor API?"
            )
        if status == 400:
            return ApiError(f"bad request: {detail} (400)")
        if status == 200:
            return ApiError(f"the API at {self.target.endpoint} answered {path} with no JSON")
        return ApiError(f"the API failed on {path} ({status}): {detail or 'no detail'}")

    def capacity(self, instance_type: str | None = None, region: str | None = None) -> list[Any]:
        """`GET /capacity`'s entries: the fleet's last 7 days by instance type and zone."""
        return list(self.get("/capacity", instance_type=instance_type, region=region)["capacity"])

    def pages(self, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paged route, following the `next` cursors."""
        return list(self.iter_pages(path, key, **params))

    def iter_pages(self, path: str, key: str, **params: Any) -> Iterator[Any]:
        cursor = None
        while True:
            page = self.get(path, **params, cursor=cursor)
            yield from page.get(key) or []
            cursor = page.get("next")
            if not cursor:
                return
