"""A 10,000-instance launch under the real quotas, in virtual time, in both alarm modes.

`per-instance`: the lifecycle's two consumers put 2 alarms per instance through the
account-wide budget (`chalicelib.alarms.budget`, on the virtual clock) while CloudWatch
throttles `PutMetricAlarm` at 3 calls/s (a token bucket, `bench.lifecycle`). The
figure is the virtual time until the last alarm exists, and the calls. (The lifecycle's
registry work is measured in `bench.lifecycle`; here only the alarm path runs, which is
what the quota bounds.)

`fleet-query`: the query alarms exist before the launch; the real lifecycle handles the
launch of 100 and of 1,000 instances on moto, and every CloudWatch call it makes is
counted. An instance is watched once its metrics reach the query alarm: within one
evaluation (2 periods of 60 s, the alarm's definition), whatever the burst's size.
"""

from __future__ import annotations

import queue
from datetime import UTC, datetime

import boto3
from botocore.config import Config

from bench.lifecycle import QUOTA_TPS, _event, _fast_pacer, _launch_n, _throttle_at_quota
from bench.report import Figure
from testkit.clocks import VirtualClock, atomic_conditional_writes, run_participants
from testkit.faults import count_calls

BURST = 10_000
CONSUMERS = 2


def _per_instance(size: int) -> tuple[float, int, int]:
    """Virtual seconds until every alarm exists, PutMetricAlarm calls, throttles."""
    from chalicelib.alarms.budget import AccountBudget
    from chalicelib.alarms.per_instance import AlarmStore, Watched
    from chalicelib.core.clients import Clients
    from chalicelib.core.settings import Settings
    from local.provision import provision

    session = boto3.Session(region_name="us-east-1")
    topic = provision(session).arns["AlertsTopic"]
    settings = Settings()
    clients = Clients(session, Config(retries={"mode": "standard", "max_attempts": 1}))
    clock = VirtualClock(CONSUMERS)
    atomic_conditional_writes(clients.dynamodb)
    throttled = _throttle_at_quota(clients.cloudwatch, clock, QUOTA_TPS)
    calls = count_calls(clients.cloudwatch)
    work: queue.Queue[list[Watched]] = queue.Queue()
    ids = [f"i-{n:017x}" for n in range(size)]
    for first in range(0, size, 100):
        work.put([Watched(i, "bench-20260127-000001") for i in ids[first : first + 100]])
    finished: list[float] = []

    def consumer() -> None:
        budget = {
            op: AccountBudget(
                clients.dynamodb,
                settings.stats_table,
                op,
                settings.alarm_api_tps,
                clock=clock.time,
                sleep=clock.sleep,
            )
            for op in ("PutMetricAlarm", "DeleteAlarms")
        }
        store = AlarmStore(
            clients.cloudwatch,
            topic_arn=topic,
            region=clients.region,
            put_limiter=budget["PutMetricAlarm"],
            delete_limiter=budget["DeleteAlarms"],
        )
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    finished.append(clock.time())
                    return
                store.put(batch)
        finally:
            clock.leave()

    run_participants(clock, [consumer] * CONSUMERS)
    return max(finished), calls.get("PutMetricAlarm", 0), throttled[0]


def _fleet_query(size: int) -> dict[str, int]:
    """CloudWatch calls of the lifecycle handling the launch of `size` instances."""
    from dataclasses import replace

    from chalicelib.alarms.fleet_query import FleetQueryAlarms
    from chalicelib.alarms.modes import AlarmModes, TelemetryEnrichment
    from chalicelib.container import Container
    from chalicelib.core.clients import Clients
    from chalicelib.core.settings import Settings
    from local.provision import provision

    session = boto3.Session(region_name="us-east-1")
    topic = provision(session).arns["AlertsTopic"]
    settings = replace(Settings(), alarm_mode="fleet-query")
    clients = Clients(session)
    alarms = FleetQueryAlarms(clients.cloudwatch, settings, topic_arn=topic, region="us-east-1")
    alarms.ensure()
    ids = _launch_n(clients.ec2, size)
    calls = count_calls(clients.cloudwatch)
    lifecycles = []
    for _ in range(CONSUMERS):
        wiring = Container(settings, clients, pacer=_fast_pacer)
        wiring.alarm_modes = AlarmModes("fleet-query", alarms, TelemetryEnrichment(None))
        lifecycles.append(wiring.lifecycle)
    start = datetime.now(UTC)
    events = [_event(i, "running", 0, n, at=start) for n, i in enumerate(ids)]
    for n, first in enumerate(range(0, size, 100)):
        lifecycles[n % CONSUMERS].handle(events[first : first + 100])
    return dict(calls)


def _writes(calls: dict[str, int]) -> int:
    return sum(v for k, v in calls.items() if k in ("PutMetricAlarm", "DeleteAlarms"))


def run() -> list[Figure]:
    from moto import mock_aws

    with mock_aws():
        elapsed, puts, throttled = _per_instance(BURST)
    with mock_aws():
        small = _fleet_query(100)
    with mock_aws():
        large = _fleet_query(1_000)
    minimum = 2 * BURST / QUOTA_TPS
    return [
        Figure(
            f"per-instance, {BURST:,} launched: time until every instance is watched",
            elapsed,
            "s virtual",
            detail=f"{elapsed / 3600:.2f} h; {puts:,} PutMetricAlarm, {throttled} throttled; "
            f"quota-bound minimum {minimum:,.0f} s",
        ),
        Figure(
            "  / quota-bound minimum",
            elapsed / minimum,
            "x",
            target=1.2,
        ),
        Figure(
            "fleet-query: alarm writes while 100 instances launch",
            _writes(small),
            "calls",
            target=0,
            detail=f"all CloudWatch calls {small}",
        ),
        Figure(
            "  while 1,000 launch",
            _writes(large),
            "calls",
            target=0,
            detail=f"all CloudWatch calls {large}: one DescribeAlarms per lifecycle copy and "
            "minute (real time), whatever the size",
        ),
        Figure(
            "  time until a new instance is watched (the query alarm's 2 periods of 60 s)",
            120,
            "s",
            detail="the alarm's definition, not measured: moto never evaluates alarms; "
            "independent of the burst's size",
        ),
    ]
