"""Failed launch calls from CloudTrail records (SPEC §15): the odd shapes parse or are
refused with a reason, never a crash."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.fleet.events import MalformedEvent
from chalicelib.fleet.launch_events import error_code, parse_launch_failure
from tests.conftest import load_event

ICE = "cloudtrail-runinstances-insufficient-capacity.json"
SPOT = "cloudtrail-runinstances-spot-limit.json"


def sample(name: str = ICE) -> dict[str, Any]:
    return copy.deepcopy(load_event(name))


def test_the_samples_parse_with_array_type_and_where() -> None:
    ice = parse_launch_failure(sample(ICE))
    assert ice.code == "InsufficientInstanceCapacity"
    assert ice.array_id == "render-20260127-a1b2c3"
    assert (ice.instance_type, ice.availability_zone) == ("c5.xlarge", "us-east-1a")
    assert ice.event_id == "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"  # CloudTrail's, not EventBridge's
    assert ice.at == datetime(2026, 1, 27, 11, 20, 5, tzinfo=UTC)
    assert ice.message.startswith("We currently do not have sufficient c5.xlarge")
    spot = parse_launch_failure(sample(SPOT))
    assert spot.code == "MaxSpotInstanceCountExceeded"
    assert (spot.availability_zone, spot.subnet_id) == (None, "subnet-0123456789abcdef0")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("Server.InsufficientInstanceCapacity", "InsufficientInstanceCapacity"),
        ("Client.VcpuLimitExceeded", "VcpuLimitExceeded"),
        ("UnauthorizedOperation", "UnauthorizedOperation"),
        ("Client.Unsupported", "Unsupported"),
        ("Client.Bad Code<script>", "BadCodescript"),
    ],
)
def test_codes_lose_their_prefix(raw: str, code: str) -> None:
    assert error_code(raw) == code


def test_no_tags_is_a_failure_of_no_array() -> None:
    event = sample()
    del event["detail"]["requestParameters"]["tagSpecificationSet"]
    failure = parse_launch_failure(event)
    assert failure.array_id is None
    assert failure.instance_type == "c5.xlarge"


@pytest.mark.parametrize("request_parameters", [None, "omitted", ["x"]])
def test_no_or_truncated_request_is_marked_truncated(request_parameters: Any) -> None:
    event = sample()
    event["detail"]["requestParameters"] = request_parameters
    failure = parse_launch_failure(event)
    assert failure.truncated
    assert failure.array_id is None
    assert failure.instance_type is None
    del event["detail"]["requestParameters"]
    assert parse_launch_failure(event).truncated


def test_error_code_only() -> None:
    event = sample()
    event["detail"] = {"eventName": "RunInstances", "errorCode": "Client.VcpuLimitExceeded"}
    failure = parse_launch_failure(event)
    assert failure.code == "VcpuLimitExceeded"
    assert failure.event_id == event["id"]  # no eventID: the EventBridge id stands in
    assert failure.at == datetime(2026, 1, 27, 11, 20, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(source="aws.s3"), "expected source"),
        (lambda e: e["detail"].update(eventName="CreateBucket"), "not a launch call"),
        (lambda e: e["detail"].pop("errorCode"), "errorCode is missing"),
        (lambda e: e.update(detail="x"), "detail is missing"),
        (lambda e: (e.pop("id"), e["detail"].pop("eventID")), "eventID"),
        (lambda e: (e.pop("time"), e["detail"].pop("eventTime")), "time"),
    ],
)
def test_other_events_are_refused_with_a_reason(change: Any, reason: str) -> None:
    event = sample()
    change(event)
    with pytest.raises(MalformedEvent, match=reason):
        parse_launch_failure(event)


def test_not_an_object() -> None:
    with pytest.raises(MalformedEvent):
        parse_launch_failure(["not", "an", "event"])
