"""Integration fixtures: the real infrastructure definition provisioned on moto."""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.alarms.per_instance import ALARM_PREFIX, AlarmStore
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.fleet.lifecycle import Message
from local.provision import Provisioned, provision
from tests.conftest import load_event

T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
MANAGED = {"spawn:managed": "true", "spawn:job-array-id": "render-20260127-a1b2c3"}
AMI = "ami-12c6146b"
_ids = itertools.count(1)


@pytest.fixture
def infra(session: boto3.Session) -> Provisioned:
    return provision(session)


def fast_pacer(operation: str) -> RateLimiter:
    """Pacing that does not slow tests (moto has no quota)."""
    return RateLimiter(10_000, burst=10_000)


def container(clients: Clients, settings: Settings | None = None, **kwargs: Any) -> Container:
    """The handlers' wiring on `clients` (moto), with pacing that does not slow tests."""
    kwargs.setdefault("pacer", fast_pacer)
    return Container(settings or Settings(), clients, **kwargs)


def fast_store(clients: Clients, topic_arn: str, **kwargs: Any) -> AlarmStore:
    """An AlarmStore whose pacing does not slow tests (moto has no quota)."""
    return AlarmStore(
        clients.cloudwatch,
        topic_arn=topic_arn,
        region="us-east-1",
        put_limiter=RateLimiter(10_000, burst=10_000),
        delete_limiter=RateLimiter(10_000, burst=10_000),
        **kwargs,
    )


@dataclass
class Fleet:
    """moto EC2 plus the lifecycle handler, with helpers to launch and send events."""

    session: boto3.Session
    infra: Provisioned
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self.wiring = container(Clients(self.session), self.settings)
        self.clients = self.wiring.clients
        self.ec2 = self.clients.ec2
        self.cloudwatch = self.clients.cloudwatch
        self.registry = self.wiring.registry
        self.topic_arn = self.infra.arns["AlertsTopic"]
        assert self.wiring.alerts_topic_arn == self.topic_arn
        self.alarms = self.wiring.alarm_store
        self.lifecycle = self.wiring.lifecycle

    def launch(self, count: int = 1, tags: dict[str, str] | None = None) -> list[str]:
        tags = MANAGED if tags is None else tags
        request: dict[str, Any] = {"ImageId": AMI, "MinCount": count, "MaxCount": count}
        if tags:
            request["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        reservation = self.ec2.run_instances(**request)
        return [i["InstanceId"] for i in reservation["Instances"]]

    def event(self, instance_id: str, state: str, at: datetime = T0) -> Message:
        event = copy.deepcopy(load_event("ec2-state-change-running.json"))
        event["id"] = f"evt-{next(_ids)}"
        event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"] = {"instance-id": instance_id, "state": state}
        event["resources"] = [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
        return Message(f"msg-{next(_ids)}", json.dumps(event))

    def alarm_names(self) -> set[str]:
        return self.alarms.list_names()

    def alarmed_instances(self) -> set[str]:
        return {name[len(ALARM_PREFIX) :].rsplit("-", 1)[0] for name in self.alarm_names()}


@pytest.fixture
def fleet(session: boto3.Session, infra: Provisioned) -> Fleet:
    return Fleet(session, infra)


def later(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)
