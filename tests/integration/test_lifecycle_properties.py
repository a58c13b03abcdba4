"""Property: whatever EventBridge does to the events (reorder, duplicate, drop), the
alarms end up matching the running managed instances, at the latest after one reconcile."""

from __future__ import annotations

import random
from datetime import timedelta

import boto3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.lifecycle import Message
from chalicelib.reconcile import reconcile
from local.provision import provision
from tests.integration.conftest import T0, Fleet

# One instance's life: after launch, a series of stop/start, maybe a final terminate.
lives = st.tuples(
    st.booleans(),  # managed?
    st.lists(st.sampled_from(["stop", "start"]), max_size=3),
    st.booleans(),  # terminated at the end?
)


def _live(
    fleet: Fleet, managed: bool, steps: list[str], end: bool, clock: list[int]
) -> list[Message]:
    tags = {"spawn:managed": "true"} if managed else {"Name": "other"}
    [instance] = fleet.launch(tags=tags)
    events = []

    def happened(state: str) -> None:
        clock[0] += 1
        events.append(fleet.event(instance, state, T0 + timedelta(seconds=clock[0])))

    happened("pending")
    happened("running")
    state = "running"
    for step in steps:
        if step == "stop" and state == "running":
            fleet.ec2.stop_instances(InstanceIds=[instance])
            happened("stopping")
            happened("stopped")
            state = "stopped"
        elif step == "start" and state == "stopped":
            fleet.ec2.start_instances(InstanceIds=[instance])
            happened("pending")
            happened("running")
            state = "running"
    if end:
        fleet.ec2.terminate_instances(InstanceIds=[instance])
        happened("shutting-down")
        happened("terminated")
    return events


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Found by this test against a registry that accepted stale events: a restart's late
# "stopped" must not take the alarms of the running instance away.
@example(
    instances=[(False, ["stop"], False), (False, [], True), (True, ["stop", "start"], False)],
    seed=0,
    duplicate_rate=0.0,
    drop_rate=0.0,
    batch_size=1,
)
@given(
    instances=st.lists(lives, min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    duplicate_rate=st.floats(0, 0.5),
    drop_rate=st.floats(0, 0.3),
    batch_size=st.integers(1, 10),
)
def test_alarms_match_running_managed_instances(
    fake_aws_credentials: None,
    instances: list[tuple[bool, list[str], bool]],
    seed: int,
    duplicate_rate: float,
    drop_rate: float,
    batch_size: int,
) -> None:
    rng = random.Random(seed)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        fleet = Fleet(session, provision(session))
        clock = [0]
        sent: list[Message] = []
        for managed, steps, end in instances:
            sent.extend(_live(fleet, managed, steps, end, clock))
        delivered = [m for m in sent if rng.random() >= drop_rate]
        lost_some = len(delivered) < len(sent)
        delivered += [m for m in delivered if rng.random() < duplicate_rate]
        rng.shuffle(delivered)
        for start in range(0, len(delivered), batch_size):
            assert fleet.lifecycle.handle(delivered[start : start + batch_size]).failed == []

        described = fleet.ec2.describe_instances()["Reservations"]
        watched = {
            i["InstanceId"]
            for r in described
            for i in r["Instances"]
            if i["State"]["Name"] == "running"
            and {"Key": "spawn:managed", "Value": "true"} in i.get("Tags", [])
        }
        if not lost_some:
            # Nothing lost: the events alone must already get it right.
            assert fleet.alarmed_instances() == watched
        reconcile(
            settings=fleet.settings,
            ec2=fleet.ec2,
            registry=fleet.registry,
            alarms=fleet.alarms,
            now=T0 + timedelta(seconds=clock[0] + 60),
        )
        assert fleet.alarmed_instances() == watched
