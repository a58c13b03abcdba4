"""Launch failures counted on moto (SPEC §15): exact despite duplicates, by code and by
(type, zone), fleet windows, the shared capacity items, and one alert per window."""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.alerts.feed import AlertFilter
from chalicelib.container import Container
from chalicelib.core.access import owner_key
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.fleet.launch_failures import capacity_key, capacity_pairs_key
from local.moto_serial import serialize_dynamodb
from local.provision import Provisioned
from testkit.faults import TransactionConflicts
from tests.conftest import load_event
from tests.integration.conftest import container

ARRAY = "render-20260127-a1b2c3"
AT = datetime(2026, 1, 27, 11, 20, 5, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(AT + timedelta(seconds=1))


@pytest.fixture
def wiring(session: boto3.Session, infra: Provisioned, clock: Clock) -> Container:
    return container(Clients(session), clock=clock, sleep=lambda s: None)


def failure(
    n: int, code: str = "Server.InsufficientInstanceCapacity", at: datetime = AT, **changes: Any
) -> dict[str, Any]:
    """The n-th failed RunInstances (its own CloudTrail eventID)."""
    event = copy.deepcopy(load_event("cloudtrail-runinstances-insufficient-capacity.json"))
    event["id"] = f"eb-{n}"
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"].update(
        eventID=f"ct-{code}-{n}", errorCode=code, eventTime=event["time"], **changes
    )
    return event


def spot_failure(n: int, subnet: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("cloudtrail-runinstances-spot-limit.json"))
    event["detail"]["eventID"] = f"ct-spot-{n}"
    event["detail"]["requestParameters"]["networkInterfaceSet"]["items"][0]["subnetId"] = subnet
    return event


def subnet_in(session: boto3.Session, zone: str) -> str:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    made = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=zone)
    return str(made["Subnet"]["SubnetId"])


def test_counts_by_code_and_type_zone_exactly_despite_duplicates(
    wiring: Container, session: boto3.Session
) -> None:
    subnet = subnet_in(session, "us-east-1b")
    failures = wiring.launch_failures
    events = [failure(n) for n in range(5)] + [spot_failure(n, subnet) for n in range(3)]
    assert [failures.on_event(e) for e in events] == ["counted"] * 8
    # EventBridge delivers again (a retry, a second copy): nothing changes.
    assert [failures.on_event(copy.deepcopy(e)) for e in events] == ["duplicate"] * 8
    view = failures.array_view(ARRAY)
    assert view["total"] == 8
    assert view["by_code"] == {"InsufficientInstanceCapacity": 5, "MaxSpotInstanceCountExceeded": 3}
    assert view["by_type_zone"] == [
        {"instance_type": "c5.xlarge", "availability_zone": "us-east-1a",
         "code": "InsufficientInstanceCapacity", "count": 5},
        # The spot request names a subnet: its zone comes from DescribeSubnets.
        {"instance_type": "c5.xlarge", "availability_zone": "us-east-1b",
         "code": "MaxSpotInstanceCountExceeded", "count": 3},
    ]  # fmt: skip
    assert view["last"]["code"] == "MaxSpotInstanceCountExceeded"
    assert view["last"]["message"] == "Max spot instance count exceeded"
    assert failures.array_view("other-20260127-000000") == {
        "total": 0, "by_code": {}, "by_type_zone": [], "last": None,
    }  # fmt: skip


def test_capacity_items_in_the_shared_format(wiring: Container, session: boto3.Session) -> None:
    subnet = subnet_in(session, "us-east-1b")
    for e in [failure(n) for n in range(5)] + [spot_failure(n, subnet) for n in range(3)]:
        wiring.launch_failures.on_event(e)
        wiring.launch_failures.on_event(e)
    stats = wiring.stats.counters(
        [capacity_key(AT, "c5.xlarge", "us-east-1a"), capacity_key(AT, "c5.xlarge", "us-east-1b")]
    )
    assert (
        stats[capacity_key(AT, "c5.xlarge", "us-east-1a")]["lf_InsufficientInstanceCapacity"] == 5
    )
    assert (
        stats[capacity_key(AT, "c5.xlarge", "us-east-1b")]["lf_MaxSpotInstanceCountExceeded"] == 3
    )
    expires = stats[capacity_key(AT, "c5.xlarge", "us-east-1a")]["expires_at"]
    assert expires == int((AT + timedelta(days=9)).timestamp())
    pairs = session.client("dynamodb").get_item(
        TableName=wiring.settings.stats_table, Key={"key": {"S": capacity_pairs_key(AT)}}
    )["Item"]["pairs"]["SS"]
    assert sorted(pairs) == ["c5.xlarge#us-east-1a", "c5.xlarge#us-east-1b"]


def test_fleet_windows_by_code(wiring: Container, clock: Clock) -> None:
    failures = wiring.launch_failures
    failures.on_event(failure(1, at=AT - timedelta(minutes=30)))
    failures.on_event(failure(2, at=AT - timedelta(hours=3)))
    failures.on_event(failure(3, code="Client.VcpuLimitExceeded", at=AT - timedelta(hours=30)))
    untagged = failure(4, code="Client.VcpuLimitExceeded")
    del untagged["detail"]["requestParameters"]["tagSpecificationSet"]
    failures.on_event(untagged)
    assert failures.fleet_view() == {
        "last_hour": {"InsufficientInstanceCapacity": 1, "VcpuLimitExceeded": 1},
        "last_24h": {"InsufficientInstanceCapacity": 2, "VcpuLimitExceeded": 1},
    }
    assert failures.array_view(ARRAY)["total"] == 3  # the untagged one is fleet-wide only


def test_untagged_failures_can_be_ignored(
    session: boto3.Session, infra: Provisioned, clock: Clock
) -> None:
    wiring = container(
        Clients(session), replace(Settings(), count_untagged_launch_failures=False), clock=clock
    )
    untagged = failure(1)
    del untagged["detail"]["requestParameters"]["tagSpecificationSet"]
    assert wiring.launch_failures.on_event(untagged) == "ignored"
    assert wiring.launch_failures.fleet_view()["last_hour"] == {}


@pytest.mark.parametrize(
    "odd",
    [
        lambda e: e["detail"]["requestParameters"].pop("tagSpecificationSet"),
        lambda e: e["detail"].pop("requestParameters"),
        lambda e: e.update(detail={"eventName": "RunInstances", "errorCode": "Client.Unsupported"}),
        lambda e: e["detail"].update(requestParameters=None),  # cut at CloudTrail's 256 KB
        lambda e: e.update(source="aws.s3", detail={"eventName": "PutObject"}),
        lambda e: e.update(detail=None),
    ],
)
def test_odd_shapes_are_logged_once_and_never_fail(
    wiring: Container, odd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = failure(9)
    odd(event)
    with caplog.at_level(logging.INFO):
        outcome = wiring.launch_failures.on_event(event)
    assert outcome in {"counted", "malformed"}
    complaints = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(complaints) <= 1
    assert all("requestParameters" not in r.getMessage() for r in caplog.records)
    assert all("198.51.100.7" not in str(r.__dict__) for r in caplog.records)  # no full event
    if outcome == "malformed":
        assert len(complaints) == 1


def alerts(wiring: Container) -> list[dict[str, Any]]:
    return wiring.alert_feed.latest(50, only=AlertFilter(event_type="array_launch_failures"))


def test_one_rolled_up_alert_per_array_code_and_window(wiring: Container, clock: Clock) -> None:
    failures = wiring.launch_failures
    for n in range(5):
        failures.on_event(failure(n))
    for n in range(3):
        failures.on_event(failure(n, code="Client.MaxSpotInstanceCountExceeded"))
    assert failures.send_alerts() == 0  # within the delay: the burst may go on
    clock.at += timedelta(seconds=61)
    # Ticks overlapping and retrying: each alert is claimed once. moto's conditional
    # updates race under threads where DynamoDB's do not (PITFALLS): serialize them.
    serialize_dynamodb()
    sent: list[int] = []
    threads = [
        threading.Thread(target=lambda: sent.append(failures.send_alerts())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sent) == 2
    assert failures.send_alerts() == 0
    got = {a["details"]["code"]: a["details"]["count"] for a in alerts(wiring)}
    assert got == {"InsufficientInstanceCapacity": 5, "MaxSpotInstanceCountExceeded": 3}
    # The next window gets its own alert.
    later = AT + timedelta(minutes=10)
    failures.on_event(failure(20, at=later))
    clock.at = later + timedelta(seconds=61)
    assert failures.send_alerts() == 1
    assert len(alerts(wiring)) == 3


def test_a_burst_from_concurrent_copies_counts_exactly_under_transaction_conflicts(
    wiring: Container,
) -> None:
    serialize_dynamodb()  # moto's own race under threads (PITFALLS), not DynamoDB's
    conflicts = TransactionConflicts(wiring.clients.dynamodb, latency=0.005)
    failures = wiring.launch_failures
    failures.sleep = time.sleep
    events = [failure(n) for n in range(48)]
    outcomes: list[str] = []

    def lambda_copy(first: int) -> None:
        for event in events[first::8]:
            outcomes.append(failures.on_event(event))
            outcomes.append(failures.on_event(copy.deepcopy(event)))  # and its duplicate

    threads = [threading.Thread(target=lambda_copy, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(outcomes)) == ["counted", "duplicate"]
    assert outcomes.count("counted") == 48
    view = failures.array_view(ARRAY)
    assert view["total"] == 48
    assert view["by_code"] == {"InsufficientInstanceCapacity": 48}
    # Conflicts happened (about 30 of 130 attempts here) and were retried.
    assert conflicts.conflicts > 0
    assert conflicts.transactions == 96 + conflicts.conflicts


def test_an_unknown_subnet_leaves_the_zone_unknown_and_still_counts(wiring: Container) -> None:
    outcome = wiring.launch_failures.on_event(spot_failure(1, "subnet-0000000000000dead"))
    assert outcome == "counted"
    view = wiring.launch_failures.array_view(ARRAY)
    assert view["by_code"] == {"MaxSpotInstanceCountExceeded": 1}
    assert view["by_type_zone"] == []  # no zone: not placed in a (type, zone) pair


def test_a_launcher_sees_only_their_own_failures_in_fleet(wiring: Container) -> None:
    failures = wiring.launch_failures
    failures.on_event(failure(1))  # launched by alice (the sample's spawn:iam-user)
    bobs = failure(2, code="Client.VcpuLimitExceeded")
    for spec in bobs["detail"]["requestParameters"]["tagSpecificationSet"]["items"]:
        for tag in spec["tags"]:
            if tag["key"] == "spawn:iam-user":
                tag["value"] = "arn:aws:iam::123456789012:user/bob"
    failures.on_event(bobs)
    alice = owner_key("arn:aws:iam::123456789012:user/alice")
    assert failures.fleet_view(owner=alice)["last_hour"] == {"InsufficientInstanceCapacity": 1}
    assert failures.fleet_view(owner=owner_key("arn:aws:iam::123456789012:user/carol")) == {
        "last_hour": {},
        "last_24h": {},
    }
    assert failures.fleet_view()["last_hour"] == {
        "InsufficientInstanceCapacity": 1,
        "VcpuLimitExceeded": 1,
    }
