"""A mass spot reclaim in one type and zone: every interruption lands in its shared
(type, zone) day item exactly once, despite `TransactionConflict`s on that hot item.

Threads stand for concurrent Lambda copies on a virtual clock (`testkit.clocks`);
`testkit.faults.TransactionConflicts` cancels a transaction that touches an item
another one in flight is writing, as DynamoDB does and moto does not.
"""

from __future__ import annotations

import contextlib
import copy
import io
import threading
from datetime import UTC, datetime, timedelta

import boto3

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.fleet.capacity import CapacityLedger
from chalicelib.fleet.events import STATE_RANK, StateChange
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.fleet.registry import Registry, describe
from local.provision import Provisioned
from testkit.clocks import VirtualClock
from testkit.faults import TransactionConflicts
from tests.conftest import load_event

WARNINGS = 80
THREADS = 16
SECONDS = 2.0
STARTED = datetime(2026, 1, 27, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)


def test_a_reclaim_counts_each_interruption_once_in_its_type_and_zone(
    session: boto3.Session, infra: Provisioned
) -> None:
    settings = Settings()
    clients = Clients(session)
    registry = Registry(clients.dynamodb, settings.instances_table)
    reservation = clients.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=WARNINGS,
        MaxCount=WARNINGS,
        InstanceType="c5.xlarge",
        Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "spawn:managed", "Value": "true"}]}
        ],
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    for instance_id, facts in describe(clients.ec2, ids).items():
        running = StateChange(STARTED, STATE_RANK["running"], instance_id, "running", "launch")
        registry.record(running, facts, True)

    clock = VirtualClock(THREADS)
    conflicts = TransactionConflicts(clients.dynamodb, 0.02, clock.sleep)
    ledger = CapacityLedger(
        clients.dynamodb, settings.stats_table, registry, clock=lambda: NOW, sleep=clock.sleep
    )
    handler = Interruptions(
        settings,
        clients.dynamodb,
        clients.ec2,
        registry,
        AlertPublisher(clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]),
        sleep=clock.sleep,
        capacity=ledger,
    )
    sample = load_event("ec2-spot-interruption-warning.json")
    first = NOW - timedelta(minutes=5)
    failed: list[str] = []

    def lambda_copy(number: int) -> None:
        try:
            for n in range(number, WARNINGS, THREADS):
                clock.sleep(n * SECONDS / WARNINGS - clock.time())
                event = copy.deepcopy(sample)
                event["time"] = (
                    f"{first + timedelta(seconds=n * SECONDS / WARNINGS):%Y-%m-%dT%H:%M:%SZ}"
                )
                event["detail"] = {"instance-id": ids[n], "instance-action": "terminate"}
                try:
                    handler.on_warning(event)
                    handler.on_warning(event)  # redelivered
                except Exception as exc:
                    failed.append(repr(exc))
        finally:
            clock.leave()

    with contextlib.redirect_stdout(io.StringIO()):  # the EMF lines
        pool = [threading.Thread(target=lambda_copy, args=(t,)) for t in range(THREADS)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    assert failed == []
    assert conflicts.conflicts > 0  # the hot item really was fought over
    # Conflicts are retried: all counted during the burst, before any tick.
    assert sum(e["interruptions"] for e in ledger.view(NOW)) == WARNINGS
    # Whatever a copy gave up on, the next fleet tick counts (none twice).
    ledger.accrue_due(registry.get_many(ids).values(), NOW)
    [entry] = ledger.view(NOW)
    assert entry["interruptions"] == WARNINGS
    assert entry["instance_hours"] == WARNINGS * 3.0
