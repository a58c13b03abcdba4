"""Lifecycle at burst scale: a 1,000-instance array launches and terminates.

1. AWS API calls (EC2 + CloudWatch) per instance, against the naive design measured in
   the same run (per event: one tag read, two alarm puts, one delete).
2. With CloudWatch throttling `PutMetricAlarm` at the real quota (3 calls/s, token
   bucket with one second of burst) and two concurrent consumers (the SQS event
   source's maximum concurrency), the virtual time until every alarm exists against
   the quota-bound minimum (2 alarms x 1,000 instances / 3 per second).
3. The same burst with the reconciler running during it (at 100 s and 400 s, and once
   after): every writer in its own "process" sharing the account-wide budget, the
   reconciler leaving queued launches to the lifecycle. Total `PutMetricAlarm` calls
   (throttled ones included) against 2 N, throttles, and time against the minimum;
   beside it, the design before (a limiter per process, no grace) in the same run.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from bench.report import Figure
from chalicelib.alarms.per_instance import AlarmStore, alarm_names
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.fleet.lifecycle import Message
from chalicelib.fleet.registry import Registry
from local.provision import provision
from testkit.clocks import VirtualClock, atomic_conditional_writes, run_participants
from testkit.faults import count_calls

SIZE = 1000
BATCH = 100
QUOTA_TPS = 3.0
CONSUMERS = 2
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = json.loads((ROOT / "events" / "ec2-state-change-running.json").read_text())
T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
TAGS = [
    {"Key": "spawn:managed", "Value": "true"},
    {"Key": "spawn:job-array-id", "Value": "bench-20260127-000001"},
]


def _event(instance_id: str, state: str, seconds: int, n: int, at: datetime = T0) -> Message:
    event = copy.deepcopy(SAMPLE)
    event.update(id=f"bench-{n}", time=(at + timedelta(seconds=seconds)).isoformat())
    event["detail"] = {"instance-id": instance_id, "state": state}
    return Message(f"m-{n}", json.dumps(event))


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b'{"__type": "Throttling", "message": "Rate exceeded"}'


def _throttle_at_quota(client: Any, clock: VirtualClock, rate: float) -> list[int]:
    """CloudWatch's quota as a token bucket on the virtual clock; returns throttle count."""
    state = {"tokens": rate, "at": 0.0}
    throttled = [0]
    lock = threading.Lock()

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        with lock:
            now = clock.time()
            state["tokens"] = min(rate, state["tokens"] + (now - state["at"]) * rate)
            state["at"] = now
            if state["tokens"] >= 1:
                state["tokens"] -= 1
                return None
            throttled[0] += 1
        headers = {"x-amzn-query-error": "Throttling;Sender"}
        return AWSResponse(request.url, 400, headers, _Raw())  # type: ignore[arg-type]

    client.meta.events.register_first("before-send.cloudwatch.PutMetricAlarm", hook)
    return throttled


def _launch(ec2: Any) -> list[str]:
    return _launch_n(ec2, SIZE)


def _launch_n(ec2: Any, count: int) -> list[str]:
    ids: list[str] = []
    spec = [{"ResourceType": "instance", "Tags": TAGS}]
    for first in range(0, count, 500):
        size = min(500, count - first)
        reservation = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=size, MaxCount=size, TagSpecifications=spec
        )
        ids.extend(i["InstanceId"] for i in reservation["Instances"])
    return ids


def _naive_per_instance(count: int) -> dict[str, float]:
    """The naive (guide's) per-event design's calls per instance, on a fresh moto."""
    session = boto3.Session(region_name="us-east-1")
    topic = provision(session).arns["AlertsTopic"]
    clients = Clients(session)
    ids = _launch_n(clients.ec2, count)
    return {k: v / count for k, v in _naive(Clients(session), topic, ids).items()}


def _naive(clients: Clients, topic_arn: str, ids: list[str]) -> dict[str, int]:
    """One Lambda per event, as the guide's scripts would do it."""
    from chalicelib.alarms.per_instance import ALARM_KINDS, Watched, alarm_request
    from chalicelib.fleet.registry import facts_from

    counts = count_calls(clients.ec2, clients.cloudwatch)
    for instance_id in ids:
        found = clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        facts = facts_from(found[0]["Instances"][0])
        for kind in ALARM_KINDS:
            request = alarm_request(
                Watched(instance_id, facts.array_id),
                kind,
                topic_arn=topic_arn,
                region=clients.region,
                recover=False,
            )
            clients.cloudwatch.put_metric_alarm(**request)
    for instance_id in ids:
        clients.cloudwatch.delete_alarms(AlarmNames=alarm_names(instance_id))
    return counts


def _fast_pacer(operation: str) -> RateLimiter:
    """Pacing that never waits: call counts do not depend on pace."""
    return RateLimiter(1e6, burst=1e6)


def _store(clients: Clients, topic_arn: str, limiter: Callable[[], RateLimiter]) -> AlarmStore:
    return AlarmStore(
        clients.cloudwatch,
        topic_arn=topic_arn,
        region=clients.region,
        put_limiter=limiter(),
        delete_limiter=limiter(),
    )


def _calls_per_instance() -> list[Figure]:
    session = boto3.Session(region_name="us-east-1")
    infra = provision(session)
    topic = infra.arns["AlertsTopic"]
    settings = Settings()
    clients = Clients(session)
    ids = _launch(clients.ec2)

    naive = dict(_naive(Clients(session), topic, ids))
    naive_calls = sum(naive.values())

    lifecycle = Container(settings, clients, pacer=_fast_pacer).lifecycle
    ours = count_calls(clients.ec2, clients.cloudwatch)
    ddb = count_calls(clients.dynamodb)
    running = [_event(i, "running", 0, n) for n, i in enumerate(ids)]
    terminated = [_event(i, "terminated", 600, SIZE + n) for n, i in enumerate(ids)]
    for events in (running, terminated):
        for start in range(0, SIZE, BATCH):
            assert lifecycle.handle(events[start : start + BATCH]).failed == []
    ours_calls = sum(ours.values())
    return [
        Figure(
            "EC2+CloudWatch calls per instance, launch+terminate of 1,000",
            ours_calls / SIZE,
            "calls/instance",
            target=2.2,
            detail=", ".join(f"{k} {v}" for k, v in sorted(ours.items())),
        ),
        Figure(
            "  naive design, same run",
            naive_calls / SIZE,
            "calls/instance",
            detail=", ".join(f"{k} {v}" for k, v in sorted(naive.items())),
        ),
        Figure("  naive / ours", naive_calls / ours_calls, "x fewer calls"),
        Figure(
            "  DynamoDB calls per instance (conditional writes, re-reads after alarm calls,"
            " lost marks)",
            sum(ddb.values()) / SIZE,
            "calls/instance",
        ),
    ]


def _time_under_throttling() -> list[Figure]:
    session = boto3.Session(region_name="us-east-1")
    infra = provision(session)
    topic = infra.arns["AlertsTopic"]
    settings = Settings()
    clock = VirtualClock(CONSUMERS)
    # No client retries: a throttle fails the message, which SQS delivers again.
    clients = Clients(session, Config(retries={"mode": "standard", "max_attempts": 1}))
    ids = _launch(clients.ec2)
    throttled = _throttle_at_quota(clients.cloudwatch, clock, QUOTA_TPS)
    per_consumer = settings.alarm_api_tps / settings.lifecycle_max_concurrency

    work: queue.Queue[list[Message]] = queue.Queue()
    events = [_event(i, "running", 0, n) for n, i in enumerate(ids)]
    for start in range(0, SIZE, BATCH):
        work.put(events[start : start + BATCH])
    redelivered = [0]

    def consumer() -> None:
        def limiter(operation: str) -> RateLimiter:
            return RateLimiter(per_consumer, clock=clock.time, sleep=clock.sleep)

        wiring = Container(settings, clients, clock=clock.time, sleep=clock.sleep, pacer=limiter)
        lifecycle = wiring.lifecycle
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                outcome = lifecycle.handle(batch)
                if outcome.failed:
                    failed = set(outcome.failed)
                    redelivered[0] += len(failed)
                    work.put([m for m in batch if m.message_id in failed])
        finally:
            clock.leave()

    run_participants(clock, [consumer] * CONSUMERS)
    elapsed = clock.time()
    store = _store(clients, topic, lambda: RateLimiter(1e6, burst=1e6))
    missing = SIZE * 2 - len(store.list_names())
    minimum = SIZE * 2 / QUOTA_TPS
    return [
        Figure(
            "time until every alarm exists / quota-bound minimum",
            elapsed / minimum,
            "x",
            target=1.2,
            detail=f"{elapsed:.0f} s virtual vs {minimum:.0f} s; {throttled[0]} throttled, "
            f"{redelivered[0]} messages redelivered",
        ),
        Figure("alarms missing at the end", missing, "alarms", target=0),
    ]


RECONCILE_AT = (100.0, 400.0, 900.0)


def _burst_with_reconciler(shared: bool) -> tuple[dict[str, float], str]:
    """One 1,000-instance burst: two lifecycle consumers and a reconciler, each its own
    process. `shared`: the account-wide budget and the grace period (this design);
    else a limiter per process at quota / concurrency and no grace (the design before)."""
    from chalicelib.alarms.budget import AccountBudget
    from chalicelib.fleet.reconcile import reconcile

    session = boto3.Session(region_name="us-east-1")
    infra = provision(session)
    topic = infra.arns["AlertsTopic"]
    settings = Settings()
    clock = VirtualClock(CONSUMERS + 1)
    clients = Clients(session, Config(retries={"mode": "standard", "max_attempts": 1}))
    atomic_conditional_writes(clients.dynamodb)

    ids = _launch(clients.ec2)
    start = datetime.now(UTC)  # moto stamps LaunchTime with the real time
    throttled = _throttle_at_quota(clients.cloudwatch, clock, QUOTA_TPS)
    attempts = [0]
    clients.cloudwatch.meta.events.register_first(
        "before-send.cloudwatch.PutMetricAlarm",
        lambda **_: attempts.__setitem__(0, attempts[0] + 1),
    )

    def pacer(operation: str) -> Any:
        if shared:
            return AccountBudget(
                clients.dynamodb,
                settings.stats_table,
                operation,
                settings.alarm_api_tps,
                clock=clock.time,
                sleep=clock.sleep,
            )
        rate = settings.alarm_api_tps / settings.lifecycle_max_concurrency
        return RateLimiter(rate, clock=clock.time, sleep=clock.sleep)

    def store() -> AlarmStore:
        return AlarmStore(
            clients.cloudwatch,
            topic_arn=topic,
            region=clients.region,
            put_limiter=pacer("PutMetricAlarm"),
            delete_limiter=pacer("DeleteAlarms"),
        )

    work: queue.Queue[list[Message]] = queue.Queue()
    events = [_event(i, "running", 0, n, at=start) for n, i in enumerate(ids)]
    for first in range(0, SIZE, BATCH):
        work.put(events[first : first + BATCH])
    backlog = [SIZE]
    lock = threading.Lock()
    done: list[float] = []
    reconciles: list[str] = []

    def consumer() -> None:
        wiring = Container(settings, clients, clock=clock.time, sleep=clock.sleep, pacer=pacer)
        lifecycle = wiring.lifecycle
        try:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                outcome = lifecycle.handle(batch)
                if outcome.failed:
                    failed = set(outcome.failed)
                    work.put([m for m in batch if m.message_id in failed])
                with lock:
                    backlog[0] -= len(batch) - len(outcome.failed)
                    if backlog[0] == 0:
                        done.append(clock.time())
        finally:
            clock.leave()

    def reconciler() -> None:
        registry = Registry(clients.dynamodb, settings.instances_table)
        alarms = store()
        try:
            for at in RECONCILE_AT:
                clock.sleep(at - clock.time())
                try:
                    report = reconcile(
                        settings=settings,
                        ec2=clients.ec2,
                        registry=registry,
                        alarms=alarms,
                        now=start + timedelta(seconds=clock.time()),
                        budget_seconds=420,
                        backlog=backlog[0] if shared else None,
                    )
                    reconciles.append(
                        f"{at:.0f}s: {report.alarms_created_for} made, "
                        f"{report.left_to_lifecycle} left"
                    )
                except Exception as exc:  # a Lambda run that failed: reported, as AWS would
                    reconciles.append(f"{at:.0f}s: failed ({type(exc).__name__})")
        finally:
            clock.leave()

    run_participants(clock, [consumer] * CONSUMERS + [reconciler])
    check = _store(clients, topic, lambda: RateLimiter(1e6, burst=1e6))
    figures = {
        "calls": attempts[0],
        "throttled": throttled[0],
        "elapsed": done[0] if done else clock.time(),
        "missing": SIZE * 2 - len(check.list_names()),
    }
    return figures, "; ".join(reconciles)


def _reconciler_in_burst() -> list[Figure]:
    from moto import mock_aws

    with mock_aws():
        before, before_runs = _burst_with_reconciler(shared=False)
    with mock_aws():
        ours, runs = _burst_with_reconciler(shared=True)
    minimum = SIZE * 2 / QUOTA_TPS
    return [
        Figure(
            "burst of 1,000 with reconciles during it: PutMetricAlarm calls / 2N",
            ours["calls"] / (2 * SIZE),
            "x",
            target=1.05,
            detail=f"{ours['calls']:.0f} calls; reconciles {runs}",
        ),
        Figure("  throttled", ours["throttled"], "calls", target=0),
        Figure(
            "  time until every alarm exists / quota-bound minimum",
            ours["elapsed"] / minimum,
            "x",
            target=1.2,
            detail=f"{ours['elapsed']:.0f} s virtual vs {minimum:.0f} s",
        ),
        Figure("  alarms missing at the end", ours["missing"], "alarms", target=0),
        Figure(
            "  design before (a limiter per process, no grace), same run: calls / 2N",
            before["calls"] / (2 * SIZE),
            "x",
            detail=f"{before['calls']:.0f} calls, {before['throttled']:.0f} throttled, "
            f"{before['elapsed']:.0f} s; reconciles {before_runs}",
        ),
    ]


def run() -> list[Figure]:
    from moto import mock_aws

    with mock_aws():
        figures = _calls_per_instance()
    with mock_aws():
        figures += _time_under_throttling()
    return figures + _reconciler_in_burst()
