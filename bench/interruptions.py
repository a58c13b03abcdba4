"""A mass spot reclaim: 1,000 interruption warnings within 10 seconds.

Each warning is handled by its own Lambda copy in AWS; here a pool of threads handles
them as they arrive, on a virtual clock (`testkit.clocks`), so ten seconds of burst
run deterministically. DynamoDB transactions are in flight for `LATENCY` seconds of
virtual time, and one that touches an item another in-flight transaction writes is
cancelled with `TransactionConflict` (`testkit.faults.TransactionConflicts`), as
DynamoDB does and moto does not.

Figures: the count error (warnings minus interruptions counted; target 0), warnings
whose handling failed, API calls per warning and transaction conflicts; and the same
burst on one item per counter (the design before sharding), in the same run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.report import Figure
from chalicelib.alerts.publish import AlertPublisher
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.fleet.counters import COUNTER_SHARDS
from chalicelib.fleet.events import STATE_RANK, StateChange
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.fleet.registry import Registry, describe
from chalicelib.fleet.stats import Stats
from local.provision import provision
from testkit.clocks import VirtualClock
from testkit.faults import TransactionConflicts, count_calls

WARNINGS = 1000
SECONDS = 10.0
THREADS = 50
# A TransactWriteItems in flight this long: DynamoDB's typical latency for a small one.
LATENCY = 0.02
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = json.loads((ROOT / "events" / "ec2-spot-interruption-warning.json").read_text())
ARRAY = "reclaim-20260127-0000aa"
TAGS: list[Any] = [
    {"Key": "spawn:managed", "Value": "true"},
    {"Key": "spawn:job-array-id", "Value": ARRAY},
]


@dataclass
class Burst:
    """What a burst did."""

    warnings: int
    counted: int
    duplicates: int
    failed: int
    stored_total: int
    transactions: int
    conflicts: int
    calls: dict[str, int]


def _launch(session: boto3.Session, registry: Registry, count: int) -> list[str]:
    """Spot instances of one array, running and recorded as their events would have."""
    ec2 = session.client("ec2")
    ids: list[str] = []
    while len(ids) < count:
        n = min(500, count - len(ids))
        reservation = ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=n,
            MaxCount=n,
            TagSpecifications=[{"ResourceType": "instance", "Tags": TAGS}],
        )
        ids.extend(i["InstanceId"] for i in reservation["Instances"])
    started = datetime(2026, 1, 27, 11, 0, tzinfo=UTC)
    for instance_id, facts in describe(ec2, ids).items():
        running = StateChange(started, STATE_RANK["running"], instance_id, "running", "launch")
        registry.record(running, facts, True)
    return ids


def burst(
    session: boto3.Session,
    warnings: int = WARNINGS,
    seconds: float = SECONDS,
    threads: int = THREADS,
    latency: float = LATENCY,
    shards: int = COUNTER_SHARDS,
) -> Burst:
    """`warnings` warnings, one per instance, arriving evenly over `seconds` (virtual),
    counted into counters split into `shards` items."""
    infra = provision(session)
    settings = Settings()
    clients = Clients(session)
    registry = Registry(clients.dynamodb, settings.instances_table)
    ids = _launch(session, registry, warnings)
    clock = VirtualClock(threads)
    conflicts = TransactionConflicts(clients.dynamodb, latency, clock.sleep)
    calls = count_calls(clients.dynamodb, clients.ec2, clients.sns)
    publisher = AlertPublisher(clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"])
    handler = Interruptions(
        settings,
        clients.dynamodb,
        clients.ec2,
        registry,
        publisher,
        sleep=clock.sleep,
        counter_shards=shards,
    )
    first = datetime.fromisoformat(SAMPLE["time"].replace("Z", "+00:00"))
    outcomes: list[str] = []
    lock = threading.Lock()

    def warning(n: int) -> dict[str, Any]:
        event: dict[str, Any] = copy.deepcopy(SAMPLE)
        event["id"] = f"reclaim-{n}"
        event["time"] = (first + timedelta(seconds=n * seconds / warnings)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        event["detail"] = {"instance-id": ids[n], "instance-action": "terminate"}
        return event

    def lambda_copy(number: int) -> None:
        try:
            for n in range(number, warnings, threads):
                clock.sleep(n * seconds / warnings - clock.time())
                try:
                    outcome = handler.on_warning(warning(n))
                except Exception as exc:  # counted: the burst's failures
                    outcome = f"failed: {exc}"
                with lock:
                    outcomes.append(outcome)
        finally:
            clock.leave()

    # Every counted warning prints its metrics (EMF); keep them off the report.
    with contextlib.redirect_stdout(io.StringIO()):
        pool = [threading.Thread(target=lambda_copy, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    now = first + timedelta(seconds=seconds)
    stats = Stats(clients.dynamodb, settings.stats_table, shards)
    stored = stats.interruption_totals(now)["total"]
    return Burst(
        warnings=warnings,
        counted=outcomes.count("counted"),
        duplicates=outcomes.count("duplicate"),
        failed=sum(o.startswith("failed") for o in outcomes),
        stored_total=stored,
        transactions=conflicts.transactions,
        conflicts=conflicts.conflicts,
        calls=calls,
    )


def run() -> list[Figure]:
    from moto import mock_aws

    with mock_aws():
        ours = burst(boto3.Session(region_name="us-east-1"))
    with mock_aws():
        single = burst(boto3.Session(region_name="us-east-1"), shards=1)
    calls = sum(ours.calls.values())
    return [
        Figure(
            f"count error, {WARNINGS:,} warnings in {SECONDS:g} s",
            abs(ours.warnings - ours.stored_total),
            "interruptions",
            target=0,
            detail=f"{ours.stored_total} counted, {ours.failed} failed",
        ),
        Figure("  warnings whose handling failed", ours.failed, "warnings", target=0),
        Figure(
            "  API calls per warning",
            calls / ours.warnings,
            "calls/warning",
            detail=", ".join(f"{k} {v}" for k, v in sorted(ours.calls.items())),
        ),
        Figure(
            f"  transaction conflicts, counters in {COUNTER_SHARDS} shards",
            ours.conflicts,
            "conflicts",
            detail=f"{ours.transactions} transactions sent",
        ),
        Figure(
            "  one item per counter, same run: count error",
            abs(single.warnings - single.stored_total),
            "interruptions",
            detail=f"{single.failed} warnings failed, {single.conflicts} conflicts in "
            f"{single.transactions} transactions",
        ),
    ]
