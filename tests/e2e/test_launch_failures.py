"""Must show (issue #23, SPEC §15), against the local stack: an array of 20 whose launches
failed 5 times for capacity in one zone and 3 times for the spot limit shows exactly those
counts; the same events delivered twice change nothing; one rolled-up alert per code."""

from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.e2e.conftest import Stack, eventually, put_rows

pytestmark = pytest.mark.e2e
ZONE = "us-east-1a"
CODES = {"InsufficientInstanceCapacity": 5, "MaxSpotInstanceCountExceeded": 3}


def inside_one_window(now: datetime) -> datetime:
    """A time in the middle of a 10-minute alert window that has begun (no straddling)."""
    start = now.replace(minute=now.minute // 10 * 10, second=0, microsecond=0)
    middle = start + timedelta(minutes=5)
    return middle if middle <= now else middle - timedelta(minutes=10)


def failed_launch(array_id: str, index: int, code: str, at: datetime) -> dict[str, Any]:
    """One member's failed RunInstances, as EventBridge delivers the CloudTrail record."""
    sample = "cloudtrail-runinstances-insufficient-capacity.json"
    if code == "Client.MaxSpotInstanceCountExceeded":
        sample = "cloudtrail-runinstances-spot-limit.json"
    event = copy.deepcopy(load_event(sample))
    detail = event["detail"]
    detail.update(eventID=f"{array_id}-{index}", eventTime=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    request = detail["requestParameters"]
    request.pop("networkInterfaceSet", None)
    request["placement"] = {"availabilityZone": ZONE}
    for spec in request["tagSpecificationSet"]["items"]:
        for tag in spec["tags"]:
            if tag["key"] == "spawn:job-array-id":
                tag["value"] = array_id
            if tag["key"] == "spawn:job-array-index":
                tag["value"] = str(index)
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(detail),
        "Resources": [],
        "Time": at,
    }


def put(stack: Stack, entries: list[dict[str, Any]]) -> None:
    events = stack.client("events")
    for start in range(0, len(entries), 10):
        response = events.put_events(Entries=entries[start : start + 10])
        assert response["FailedEntryCount"] == 0


def launch_members(stack: Stack, array_id: str, count: int, size: int) -> list[str]:
    tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": array_id,
        "spawn:job-array-name": "lf",
        "spawn:job-array-size": str(size),
    }
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    reservation = stack.client("ec2").run_instances(
        ImageId="ami-12c6146b", MinCount=count, MaxCount=count, TagSpecifications=spec
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    put(
        stack,
        [
            {
                "Source": "aws.ec2",
                "DetailType": "EC2 Instance State-change Notification",
                "Detail": json.dumps({"instance-id": i, "state": "running"}),
                "Resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{i}"],
                "Time": datetime.now(UTC),
            }
            for i in ids
        ],
    )
    return ids


def test_an_array_of_20_shows_its_launch_failures_exactly_once_each(stack: Stack) -> None:
    now = datetime.now(UTC)
    array_id = f"lf-{now:%Y%m%d}-{secrets.token_hex(3)}"
    ids = launch_members(stack, array_id, 12, 20)
    put_rows(stack, array_id, [("running", 1, 10, i) for i in ids])
    at = inside_one_window(now)
    failures = [
        failed_launch(array_id, 12 + n, "Server.InsufficientInstanceCapacity", at) for n in range(5)
    ]
    failures += [
        failed_launch(array_id, 17 + n, "Client.MaxSpotInstanceCountExceeded", at) for n in range(3)
    ]
    put(stack, failures)
    put(stack, failures)  # EventBridge delivers again: new event ids, same CloudTrail records
    # A last failure of another array, after both copies: once it counts, they were handled.
    sentinel = f"lf-{now:%Y%m%d}-{secrets.token_hex(3)}"
    put(stack, [failed_launch(sentinel, 0, "Server.InsufficientInstanceCapacity", at)])

    def members_running() -> bool:
        status, body = stack.get(f"/arrays/{array_id}/progress")
        return status == 200 and body["workers"]["running"] == 12

    eventually(members_running, timeout=10)
    eventually(lambda: _counted(stack, sentinel), timeout=10)
    body = stack.get(f"/arrays/{array_id}/progress")[1]
    assert body["size"] == 20
    assert body["workers"]["pending"] == 8  # the members whose launches failed
    failed = body["launch_failures"]
    assert failed["total"] == 8
    assert failed["by_code"] == CODES
    assert failed["by_type_zone"] == [
        {"instance_type": "c5.xlarge", "availability_zone": ZONE, "code": code, "count": n}
        for code, n in CODES.items()
    ]
    assert failed["last"]["code"] in CODES
    fleet = stack.get("/fleet")[1]["launch_failures"]
    assert fleet["last_24h"]["MaxSpotInstanceCountExceeded"] >= 3

    def alerts() -> list[dict[str, Any]]:
        status, body = stack.get(f"/alerts?event_type=array_launch_failures&array_id={array_id}")
        assert status == 200
        return body["alerts"]

    eventually(lambda: len(alerts()) == 2, timeout=10)
    for _ in range(3):
        stack.tick()  # more ticks, no more alerts
    sent = alerts()
    assert sorted((a["details"]["code"], a["details"]["count"]) for a in sent) == sorted(
        CODES.items()
    )
    assert all(a["kind"] == "system" and a["array_id"] == array_id for a in sent)


def _counted(stack: Stack, array_id: str) -> bool:
    """Whether a failure of `array_id` was counted (the item `/progress` reads)."""
    found = stack.client("dynamodb").scan(
        TableName="spawn-fleet-stats",
        FilterExpression="begins_with(#k, :p)",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":p": {"S": f"launch-failures#array#{array_id}#"}},
    )
    return bool(found["Items"])
