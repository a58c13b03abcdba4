"""The console setup on a fleet of 100 arrays: CloudWatch and Logs write calls.

1. A first setup run (everything created) against a second one with nothing changed:
   the second should write nothing. moto lacks composite alarms, anomaly detectors
   and saved queries; those calls are counted from the plan the run made, not sent.
2. The minute's array-dashboard check on the same fleet: its calls, and the writes a
   new array costs (one PutDashboard).
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3

from bench.report import Figure
from chalicelib.console.alarms import Topics
from chalicelib.console.description import Deployment
from chalicelib.console.setup import ConsoleSetup
from chalicelib.core.clients import Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.progress.store import SummaryStore
from chalicelib.progress.summary import Summary
from local.provision import provision
from testkit.faults import count_calls

ARRAYS = 100
NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
MOTO_LACKS = (
    "PutCompositeAlarm",
    "PutAnomalyDetector",
    "DescribeAnomalyDetectors",
    "DeleteAnomalyDetector",
    "PutQueryDefinition",
    "DescribeQueryDefinitions",
    "DeleteQueryDefinition",
)
WRITES = ("Put", "Create", "Delete", "Tag")


def _writes(*counters: dict[str, int]) -> int:
    return sum(n for c in counters for op, n in c.items() if op.startswith(WRITES))


def _setup(session: boto3.Session) -> ConsoleSetup:
    infra = provision(session)
    aws = Clients(session)
    settings = Settings(console_skip_calls=MOTO_LACKS)
    store = SummaryStore(aws.dynamodb, settings.arrays_table)
    for n in range(ARRAYS):
        store.save(Summary.new(f"bench-20260127-{n:06x}"))
    topics = Topics(infra.arns["AlertsTopic"], infra.arns["CriticalTopic"], None)
    return ConsoleSetup(
        settings,
        Deployment(aws.region, aws.account_id, topics),
        {aws.region: aws.cloudwatch},
        aws.logs,
        aws.dynamodb,
        alarm_limiter=RateLimiter(10_000, burst=10_000),
    )


def _figures() -> list[Figure]:
    setup = _setup(boto3.Session(region_name="us-east-1"))
    cloudwatch, logs = count_calls(setup.cloudwatch_by_region["us-east-1"]), count_calls(setup.logs)
    first = setup.run(NOW)
    first_writes = _writes(cloudwatch, logs)
    planned = first_writes + sum(first.skipped.values())
    cloudwatch.clear()
    logs.clear()
    second = setup.run(NOW)
    second_writes = _writes(cloudwatch, logs)
    reads = sum(cloudwatch.values()) + sum(logs.values())

    cloudwatch.clear()
    minute = setup.sync_array_dashboards(NOW)
    check_calls = dict(cloudwatch)
    SummaryStore(setup.dynamodb, setup.settings.arrays_table).save(Summary.new("bench-new-1"))
    cloudwatch.clear()
    setup.sync_array_dashboards(NOW)
    new_array = _writes(cloudwatch)
    return [
        Figure(
            f"console write calls, first setup run, {ARRAYS} arrays",
            planned,
            "calls",
            detail=f"{first_writes} made on moto ({first.writes['PutDashboard']} dashboards) "
            f"+ {planned - first_writes} moto lacks, counted from the plan",
        ),
        Figure(
            f"console write calls, second setup run, {ARRAYS} arrays",
            second_writes,
            "calls",
            target=0,
            detail=f"{second.write_count} writes, {reads} reads (GetDashboard per dashboard)",
        ),
        Figure(
            "second run / first run, write calls",
            second_writes / planned,
            "x",
            target=0.01,
            detail=f"{second_writes} vs {planned}",
        ),
        Figure(
            f"array dashboard check (every minute), {ARRAYS} arrays: write calls",
            minute.write_count,
            "calls",
            target=0,
            detail=f"CloudWatch calls: {check_calls}",
        ),
        Figure("a new array: write calls", new_array, "calls", target=1),
    ]


def run() -> list[Figure]:
    from moto import mock_aws

    with mock_aws():
        return _figures()
