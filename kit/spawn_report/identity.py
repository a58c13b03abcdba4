"""Who am I: the worker's array, index, instance and hostname (SPEC §12).

1. The environment wins: `JOB_ARRAY_ID`, `JOB_ARRAY_INDEX` (or `TASK_ARRAY_INDEX`),
   `SPAWN_INSTANCE_ID`, `SPAWN_HOSTNAME`, `AWS_REGION`.
2. Whatever is missing comes from the instance metadata service, IMDSv2 only (a session
   token first, as EC2 recommends): instance id, local hostname, region, and the
   spawn tags when the instance exposes tags in its metadata.
3. When it does not (`/tags/instance` answers 404), the tags come from EC2
   `DescribeTags`, filtered on the instance's own id.

What the metadata service and EC2 said is cached in the spool directory for the current
boot (keyed by the kernel's boot id), so a worker asks once, not once per report. The
environment is applied on top of the cache every time.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spawn_report.exceptions import IdentityError, MetadataUnavailable
from spawn_report.settings import Settings

if TYPE_CHECKING:
    import urllib.request

    from mypy_boto3_ec2.client import EC2Client

logger = logging.getLogger(__name__)

ARRAY_ID_TAG = "spawn:job-array-id"
ARRAY_INDEX_TAG = "spawn:job-array-index"
TOKEN_TTL_SECONDS = 21600
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
CACHE_FILE = "identity.json"


@dataclass(frozen=True)
class Identity:
    """What a worker knows of itself; None where nothing could tell."""

    array_id: str | None = None
    array_index: int | None = None
    instance_id: str | None = None
    hostname: str | None = None
    region: str | None = None

    def require_row_keys(self) -> tuple[str, int, str, str]:
        """(array id, index, instance id, hostname) for a progress row, or IdentityError."""
        array_id, index, instance_id, hostname = (
            self.array_id,
            self.array_index,
            self.instance_id,
            self.hostname,
        )
        if array_id is None or index is None or instance_id is None or hostname is None:
            missing = [
                hint
                for value, hint in (
                    (array_id, "array id (JOB_ARRAY_ID or the spawn:job-array-id tag)"),
                    (index, "array index (JOB_ARRAY_INDEX or the spawn:job-array-index tag)"),
                    (instance_id, "instance id (SPAWN_INSTANCE_ID or instance metadata)"),
                    (hostname, "hostname (SPAWN_HOSTNAME or instance metadata)"),
                )
                if value is None
            ]
            raise IdentityError("cannot tell this worker's " + ", ".join(missing))
        return array_id, index, instance_id, hostname


class Metadata:
    """A minimal IMDSv2 client (stdlib only): a session token, then GETs.

    Args:
        endpoint: the service's base URL (botocore's `AWS_EC2_METADATA_SERVICE_ENDPOINT`).
        timeout: seconds per request; short, since off EC2 nothing answers.
    """

    def __init__(self, endpoint: str, timeout: float = 1.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None

    def _open(self, request: urllib.request.Request) -> str:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) endpoint from settings
                return str(response.read().decode("utf-8"))
        except urllib.error.HTTPError:
            raise
        except (OSError, ValueError) as exc:
            raise MetadataUnavailable(f"instance metadata at {self.endpoint}: {exc}") from exc

    def _fetch_token(self) -> str:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - http(s) endpoint from settings
            f"{self.endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            return self._open(request)
        except urllib.error.HTTPError as exc:
            raise MetadataUnavailable(f"instance metadata token refused: HTTP {exc.code}") from exc

    def get(self, path: str) -> str | None:
        """The text at `/latest/meta-data/{path}`, or None when it does not exist (404)."""
        # Imported here: most reports never need the metadata service (cached identity).
        import urllib.error
        import urllib.request

        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fetch_token()
            request = urllib.request.Request(  # noqa: S310 - http(s) endpoint from settings
                f"{self.endpoint}/latest/meta-data/{path}",
                headers={"X-aws-ec2-metadata-token": self._token},
            )
            try:
                return self._open(request)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 1:
                    self._token = None  # expired: one new token, then give up
                    continue
                raise MetadataUnavailable(f"instance metadata {path}: HTTP {exc.code}") from exc
        raise MetadataUnavailable(f"instance metadata {path}: token refused twice")


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _load_cache(path: Path, boot_id: str | None) -> Identity | None:
    if boot_id is None:
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("boot_id") != boot_id:
            return None
        fields = {k: data.get(k) for k in ("array_id", "instance_id", "hostname", "region")}
        index = data.get("array_index")
        return Identity(
            array_index=index if isinstance(index, int) else None,
            **{k: v if isinstance(v, str) else None for k, v in fields.items()},
        )
    except (OSError, ValueError, AttributeError):
        return None


def _save_cache(path: Path, boot_id: str | None, identity: Identity) -> None:
    if boot_id is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"boot_id": boot_id, **asdict(identity)}))
        temporary.replace(path)
    except OSError as exc:
        logger.debug("identity cache not written: %s", exc)


def _index_of(text: str | None, source: str) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        logger.warning("%s %r is not an integer ≥ 0; index unknown", source, text)
        return None
    return int(text)


def _tags_from_ec2(ec2: EC2Client, instance_id: str) -> dict[str, str]:
    response = ec2.describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [instance_id]},
            {"Name": "key", "Values": [ARRAY_ID_TAG, ARRAY_INDEX_TAG]},
        ]
    )
    return {t["Key"]: t["Value"] for t in response.get("Tags", []) if "Key" in t and "Value" in t}


def discover(metadata: Metadata, ec2_factory: Callable[[str | None], EC2Client]) -> Identity:
    """Ask the metadata service (then EC2 for tags, if the metadata has none)."""
    instance_id = metadata.get("instance-id")
    hostname = metadata.get("local-hostname")
    region = metadata.get("placement/region")
    tags: dict[str, str] = {}
    listing = metadata.get("tags/instance")
    if listing is not None:
        for key in (ARRAY_ID_TAG, ARRAY_INDEX_TAG):
            if key in listing.split():
                value = metadata.get(f"tags/instance/{key}")
                if value is not None:
                    tags[key] = value
    elif instance_id is not None:
        # Tags in instance metadata are off: EC2 has them (needs ec2:DescribeTags).
        tags = _tags_from_ec2(ec2_factory(region), instance_id)
    return Identity(
        array_id=tags.get(ARRAY_ID_TAG) or None,
        array_index=_index_of(tags.get(ARRAY_INDEX_TAG), f"tag {ARRAY_INDEX_TAG}"),
        instance_id=instance_id,
        hostname=hostname,
        region=region,
    )


def _overrides(settings: Settings) -> dict[str, Any]:
    return {
        k: v
        for k, v in (
            ("array_id", settings.array_id),
            ("array_index", settings.array_index),
            ("instance_id", settings.instance_id),
            ("hostname", settings.hostname),
            ("region", settings.region),
        )
        if v is not None
    }


def resolve(
    settings: Settings,
    ec2_factory: Callable[[str | None], EC2Client],
    metadata: Metadata | None = None,
) -> Identity:
    """The worker's identity: environment first, then the cache, metadata and EC2.

    Never raises: a missing or malformed piece stays None, and callers that need one
    ask `Identity.require_row_keys`. Errors talking to EC2 are logged and leave the tags
    unknown.
    """
    overrides = _overrides(settings)
    if len(overrides) == 5 or settings.metadata_disabled:
        return replace(Identity(hostname=socket.gethostname()), **overrides)
    cache = settings.spool_dir / CACHE_FILE
    boot_id = _boot_id()
    found = _load_cache(cache, boot_id)
    if found is None:
        from botocore.exceptions import BotoCoreError, ClientError

        metadata = metadata or Metadata(settings.metadata_endpoint)
        try:
            found = discover(metadata, ec2_factory)
        except MetadataUnavailable as exc:
            logger.info("not using instance metadata: %s", exc)
            found = Identity()
        except (BotoCoreError, ClientError) as exc:
            logger.warning("instance tags not readable from EC2: %s", exc)
            found = Identity()
        else:
            _save_cache(cache, boot_id, found)
    if found.hostname is None:
        found = replace(found, hostname=socket.gethostname())
    return replace(found, **overrides)
