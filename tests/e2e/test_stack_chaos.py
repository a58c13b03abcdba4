"""A smaller chaos run end to end: a seeded history (`chaos.history`) played through the
local stack, only through AWS APIs (EC2 actions, `PutEvents` to the default bus, the
workers' `PutItem`), with duplicated, reordered, dropped and malformed events. The
stack's own rules, queues, stream reader and schedules (the reconciler included) must
bring it to the invariants of `make chaos`. Time is compressed: the world's steps are
carried out one after the other, each stamped with the time it happens."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.alarms.per_instance import AlarmStore, instance_of
from chalicelib.progress.summary import recount
from chalicelib.progress.workers import ProgressRows
from chaos.history import generate
from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.e2e
SEED = 21
DETAIL_TYPES = {
    "state": "EC2 Instance State-change Notification",
    "warning": "EC2 Spot Instance Interruption Warning",
    "rebalance": "EC2 Instance Rebalance Recommendation",
}


class Player:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ec2 = stack.client("ec2")
        self.events = stack.client("events")
        self.dynamodb = stack.client("dynamodb")
        self.rng = random.Random(SEED)
        self.ids: dict[tuple[str, int], str] = {}
        self.pending: list[dict[str, Any]] = []
        self.faults: Counter[str] = Counter()
        self.interrupted: set[str] = set()

    def event(self, kind: str, key: tuple[str, int], **detail: str) -> None:
        instance_id = self.ids[key]
        entry = {
            "Source": "aws.ec2",
            "DetailType": DETAIL_TYPES[kind],
            "Detail": json.dumps({"instance-id": instance_id, **detail}),
            "Resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"],
            "Time": datetime.now(UTC),
        }
        if kind == "state" and self.rng.random() < 0.05:
            self.faults["dropped"] += 1
        else:
            copies = 2 if self.rng.random() < 0.10 else 1
            self.faults["duplicated"] += copies - 1
            self.pending += [entry] * copies
        if self.rng.random() < 0.02 or not self.faults["malformed"]:
            broken = {**entry, "Detail": json.dumps({"instance-id": "not-an-instance", **detail})}
            self.faults["malformed"] += 1
            self.pending.append(broken)
        if len(self.pending) >= 10:
            self.flush()

    def flush(self) -> None:
        # Reordered within each PutEvents call.
        self.rng.shuffle(self.pending)
        for start in range(0, len(self.pending), 10):
            response = self.events.put_events(Entries=self.pending[start : start + 10])
            assert response["FailedEntryCount"] == 0
        self.pending = []

    def row(self, key: tuple[str, int], values: dict[str, Any]) -> None:
        item = {
            "array_id": {"S": key[0]},
            "task_index": {"N": str(key[1])},
            "instance_id": {"S": self.ids[key]},
            "hostname": {"S": f"ip-10-9-0-{key[1]}"},
            "last_update": {"S": values.get("last_update", datetime.now(UTC).isoformat())},
        }
        for name in ("status", "tasks_completed", "tasks_total"):
            value = values[name]
            item[name] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
        self.dynamodb.put_item(TableName="spawn-progress", Item=item)


def test_a_seeded_history_with_faults_through_the_local_stack(stack: Stack) -> None:
    history = generate(SEED, instances=24)
    player = Player(stack)
    log_start = len(stack.log())
    for step in history.steps:
        key = (step.array, step.index)
        if step.kind == "launch":
            spec = next(a for a in history.arrays if a.array_id == step.array)
            tags = {"spawn:managed": "true", "spawn:job-array-id": spec.array_id}
            tags["spawn:job-array-size"] = str(spec.size)
            tags["spawn:job-array-index"] = str(step.index)
            if step.index in spec.opted_out:
                tags["spawn:monitoring"] = "off"
            reservation = player.ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                    }
                ],
            )
            player.ids[key] = reservation["Instances"][0]["InstanceId"]
            player.event("state", key, state="pending")
        elif step.kind in ("running",):
            player.event("state", key, state="running")
        elif step.kind == "stop":
            player.ec2.stop_instances(InstanceIds=[player.ids[key]])
            player.event("state", key, state="stopped")
        elif step.kind == "start":
            player.ec2.start_instances(InstanceIds=[player.ids[key]])
            player.event("state", key, state="running")
        elif step.kind == "terminate":
            player.ec2.terminate_instances(InstanceIds=[player.ids[key]])
            player.event("state", key, state="terminated")
        elif step.kind == "warning":
            player.event("warning", key, **{"instance-action": step.data["action"]})
            if history.managed(*key):
                player.interrupted.add(player.ids[key])
        elif step.kind == "rebalance":
            player.event("rebalance", key)
        elif step.kind == "row":
            player.row(key, step.data["values"])
    player.flush()
    assert player.faults["dropped"] > 0
    assert player.faults["duplicated"] > 0

    mine = set(player.ids.values())
    cloudwatch = stack.client("cloudwatch")
    alarms = AlarmStore(cloudwatch, topic_arn="", region="us-east-1")

    def running_managed() -> set[str]:
        found = set()
        pages = player.ec2.get_paginator("describe_instances").paginate(InstanceIds=list(mine))
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if (
                        instance["State"]["Name"] == "running"
                        and tags.get("spawn:monitoring") != "off"
                    ):
                        found.add(instance["InstanceId"])
        return found

    def alarms_agree() -> bool:
        alarmed = {instance_of(name) for name in alarms.list_names()} & mine
        return alarmed == running_managed()

    # The reconciler runs on every tick here: dropped state changes heal within seconds.
    eventually(alarms_agree, timeout=120, interval=1)

    rows = ProgressRows(player.dynamodb, "spawn-progress")

    def summaries_agree() -> bool:
        for spec in history.arrays:
            status, body = stack.get(f"/arrays/{spec.array_id}/progress")
            counts = recount(rows.all(spec.array_id)).counts
            if status != 200 or any(
                body["workers"][name] != getattr(counts, name)
                for name in ("running", "completed", "failed", "invalid", "lost")
            ):
                return False
        return True

    eventually(summaries_agree, timeout=60, interval=1)

    def rejected() -> int:
        log = stack.log()[log_start:]
        return sum(
            log.count(message)
            for message in (
                "dropping malformed state-change message",
                "malformed spot interruption warning",
                "malformed rebalance recommendation",
            )
        )

    # Each malformed event: exactly one logged error.
    eventually(lambda: rejected() == player.faults["malformed"], timeout=30)
    counted = sum(
        stack.client("dynamodb")
        .get_item(TableName="spawn-instances", Key={"instance_id": {"S": i}})
        .get("Item", {})
        .get("interrupted_ms")
        is not None
        for i in player.interrupted
    )
    assert counted == len(player.interrupted)
