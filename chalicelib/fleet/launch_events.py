"""Failed launch calls as CloudTrail records deliver them (SPEC §15), parsed leniently.

EventBridge hands over `AWS API Call via CloudTrail` events (source `aws.ec2`) for the
launch calls spawn makes: one `RunInstances` per array member (spawn's
`pkg/aws/client.go`). Only the envelope must hold (`id`, `time`, an `errorCode`); the
rest is read where present: tags, instance type, zone or subnet may be missing (no tags,
no `requestParameters`, a record truncated at CloudTrail's 256 KB limit). The code is
CloudTrail's `errorCode` without its `Client.` / `Server.` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.fleet.events import MalformedEvent, parse_time

CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"
# The launch calls covered: spawn makes RunInstances only (one per array member, with
# the array tags in its tag specifications); it never calls CreateFleet.
LAUNCH_CALLS = ("RunInstances",)
ARRAY_TAG = "spawn:job-array-id"
OWNER_TAG = "spawn:iam-user"
CODE_MAX = 64
MESSAGE_MAX = 300


@dataclass(frozen=True)
class LaunchFailure:
    """One failed launch call.

    Attributes:
        event_id: CloudTrail's `eventID` (the same in every delivery of one call), else
            the EventBridge event's `id`.
        at: when the call was made (`eventTime`, else the event's `time`).
        code: the error code without `Client.` / `Server.`.
        message: the error message (trimmed), or "".
        array_id: the `spawn:job-array-id` in the request's tag specifications.
        instance_type, availability_zone, subnet_id: where the request names them.
        truncated: the record came without its request (omitted or cut by CloudTrail).
        owner: the `spawn:iam-user` tag (who launched), as written.
    """

    event_id: str
    at: datetime
    code: str
    message: str = ""
    array_id: str | None = None
    instance_type: str | None = None
    availability_zone: str | None = None
    subnet_id: str | None = None
    truncated: bool = False
    owner: str | None = None


def error_code(raw: str) -> str:
    """`Server.InsufficientInstanceCapacity` → `InsufficientInstanceCapacity`."""
    for prefix in ("Client.", "Server."):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
    return "".join(c for c in raw if c.isalnum() or c in "._-")[:CODE_MAX]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _items(value: object) -> list[Mapping[str, Any]]:
    """CloudTrail's EC2 lists: `{"items": [...]}` (or a bare list)."""
    if isinstance(value, Mapping):
        value = value.get("items")
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _tag(request: Mapping[str, Any], wanted: str) -> str | None:
    for spec in _items(request.get("tagSpecificationSet")) + _items(
        request.get("tagSpecifications")
    ):
        for tag in _items(spec.get("tags")) + _items(spec.get("tagSet")):
            key = tag.get("key", tag.get("Key"))
            if key == wanted:
                return _text(tag.get("value", tag.get("Value")))
    return None


def _placement(request: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(instance type, zone, subnet) as the request names them."""
    instance_type = _text(request.get("instanceType"))
    placement = request.get("placement")
    zone = _text(placement.get("availabilityZone")) if isinstance(placement, Mapping) else None
    zone = zone or _text(request.get("availabilityZone"))
    subnet = _text(request.get("subnetId"))
    if subnet is None:
        for interface in _items(request.get("networkInterfaceSet")):
            subnet = _text(interface.get("subnetId"))
            if subnet:
                break
    return instance_type, zone, subnet


def parse_launch_failure(event: Any) -> LaunchFailure:
    """A failed launch call from an EventBridge event; `MalformedEvent` when it is not
    one (another service, another call, no `errorCode`, no id or time)."""
    if not isinstance(event, Mapping):
        raise MalformedEvent("event is not a JSON object")
    if event.get("source") != "aws.ec2" or event.get("detail-type") != CLOUDTRAIL_CALL:
        raise MalformedEvent(
            f"expected source aws.ec2 and detail-type {CLOUDTRAIL_CALL!r}, got "
            f"{str(event.get('source'))[:40]!r} / {str(event.get('detail-type'))[:60]!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("detail is missing or not an object")
    name = detail.get("eventName")
    if name not in LAUNCH_CALLS:
        raise MalformedEvent(f"eventName {str(name)[:40]!r} is not a launch call")
    raw_code = _text(detail.get("errorCode"))
    code = error_code(raw_code) if raw_code else ""
    if not code:
        raise MalformedEvent("errorCode is missing: the call did not fail")
    event_id = _text(detail.get("eventID")) or _text(event.get("id"))
    if event_id is None:
        raise MalformedEvent("neither detail.eventID nor id is present")
    at = parse_time(detail.get("eventTime") or event.get("time"))
    message = (_text(detail.get("errorMessage")) or "")[:MESSAGE_MAX]
    request = detail.get("requestParameters")
    if not isinstance(request, Mapping):
        return LaunchFailure(event_id, at, code, message, truncated=True)
    instance_type, zone, subnet = _placement(request)
    return LaunchFailure(
        event_id,
        at,
        code,
        message,
        array_id=_tag(request, ARRAY_TAG),
        owner=_tag(request, OWNER_TAG),
        instance_type=instance_type,
        availability_zone=zone,
        subnet_id=subnet,
    )
