"""Scheduled functions never overlap: a run takes its schedule's lease or skips."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.config import Config
from chalice.test import Client

from chalicelib import container
from chalicelib.container import Container, install
from chalicelib.core.clients import Clients
from chalicelib.core.schedules import ScheduleLease
from chalicelib.core.settings import Settings
from chalicelib.progress.aggregator import TickReport
from local.provision import Provisioned
from testkit.clocks import atomic_conditional_writes


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _lease(session: boto3.Session, clock: Clock, name: str = "progress_tick") -> ScheduleLease:
    # A client of its own, as each Lambda process has.
    dynamodb = session.client("dynamodb", config=Config(retries={"max_attempts": 1}))
    atomic_conditional_writes(dynamodb)
    return ScheduleLease(dynamodb, Settings().stats_table, name, hold_seconds=60, clock=clock)


def test_a_second_run_skips_while_the_first_holds_the_lease(
    session: boto3.Session, infra: Provisioned
) -> None:
    clock = Clock()
    first, second = _lease(session, clock), _lease(session, clock)
    token = first.acquire()
    assert token is not None
    clock.now += 59
    assert second.acquire() is None
    first.release(token)
    assert second.acquire() is not None


def test_a_lease_left_by_a_run_that_died_expires_after_the_timeout(
    session: boto3.Session, infra: Provisioned
) -> None:
    clock = Clock()
    dead, next_run = _lease(session, clock), _lease(session, clock)
    assert dead.acquire() is not None
    clock.now += 60.001
    assert next_run.acquire() is not None


def test_a_late_release_does_not_free_the_lease_another_run_took_since(
    session: boto3.Session, infra: Provisioned
) -> None:
    clock = Clock()
    slow, later, third = _lease(session, clock), _lease(session, clock), _lease(session, clock)
    stale = slow.acquire()
    assert stale is not None
    clock.now += 61
    assert later.acquire() is not None
    slow.release(stale)
    assert third.acquire() is None


def test_each_schedule_has_its_own_lease(session: boto3.Session, infra: Provisioned) -> None:
    clock = Clock()
    assert _lease(session, clock, "progress_tick").acquire() is not None
    assert _lease(session, clock, "fleet_tick").acquire() is not None


def test_the_lease_is_given_back_when_the_run_fails(
    session: boto3.Session, infra: Provisioned
) -> None:
    clock = Clock()
    lease = _lease(session, clock)

    def failing_run() -> None:
        with lease.held() as mine:
            assert mine
            raise RuntimeError("tick failed")

    with pytest.raises(RuntimeError):
        failing_run()
    with lease.held() as mine:
        assert mine


def test_overlapping_runs_in_threads_never_run_the_body_at_once(
    session: boto3.Session, infra: Provisioned
) -> None:
    clock = Clock()
    leases = [_lease(session, clock) for _ in range(6)]
    inside = 0
    most_inside = 0
    ran = 0
    guard = threading.Lock()
    start = threading.Barrier(len(leases))

    def run(lease: ScheduleLease) -> None:
        nonlocal inside, most_inside, ran
        start.wait()
        with lease.held() as mine:
            if not mine:
                return
            with guard:
                inside += 1
                ran += 1
                most_inside = max(most_inside, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=run, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most_inside == 1
    assert ran >= 1


class CountingTick:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self, now: object = None) -> TickReport:
        self.ticks += 1
        return TickReport()


@pytest.mark.parametrize(
    ("function", "attribute"),
    [("progress_tick", "progress"), ("fleet_tick", "fleet_health")],
)
def test_a_one_minute_schedule_skips_its_run_while_the_last_one_holds_the_lease(
    session: boto3.Session, infra: Provisioned, function: str, attribute: str
) -> None:
    import app

    wiring = Container(clients=Clients(session))
    counting = CountingTick()
    setattr(wiring, attribute, counting)
    before = container._installed
    install(wiring)
    try:
        holder = ScheduleLease(
            session.client("dynamodb"), Settings().stats_table, function, hold_seconds=60
        )
        token = holder.acquire()
        assert token is not None
        with Client(app.app) as client:
            event = client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
            )
            client.lambda_.invoke(function, event)
            assert counting.ticks == 0
            holder.release(token)
            client.lambda_.invoke(function, event)
            client.lambda_.invoke(function, event)
        # Each run gave the lease back when it ended.
        assert counting.ticks == 2
    finally:
        install(before) if before is not None else setattr(container, "_installed", None)
