"""The account-wide alarm budget: every writer, in any process, stays under the quota."""

from __future__ import annotations

import itertools
import threading

import boto3
import pytest
from botocore.config import Config

from chalicelib.alarms.budget import AccountBudget
from chalicelib.core.settings import Settings
from local.provision import Provisioned
from testkit.clocks import VirtualClock, atomic_conditional_writes

RATE = 3.0


def _budget(
    session: boto3.Session, clock: VirtualClock | None = None, **kwargs: object
) -> AccountBudget:
    # Each budget gets a client of its own, as each Lambda process would.
    dynamodb = session.client("dynamodb", config=Config(retries={"max_attempts": 1}))
    atomic_conditional_writes(dynamodb)
    if clock is None:
        return AccountBudget(dynamodb, Settings().stats_table, "PutMetricAlarm", RATE, **kwargs)  # type: ignore[arg-type]
    return AccountBudget(
        dynamodb,
        Settings().stats_table,
        "PutMetricAlarm",
        RATE,
        clock=clock.time,
        sleep=clock.sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def test_writers_in_separate_processes_never_exceed_the_quota_together(
    session: boto3.Session, infra: Provisioned
) -> None:
    # Five writers (two lifecycle copies, the reconciler, setup, a migration), each with
    # its own budget object and client, as separate Lambda processes have; each wants
    # a different number of calls and leases as it goes.
    wants = [40, 40, 25, 7, 13]
    clock = VirtualClock(len(wants))
    calls: list[float] = []
    lock = threading.Lock()

    def writer(count: int) -> None:
        budget = _budget(session, clock)
        try:
            budget.reserve(count)
            for _ in range(count):
                budget.acquire()
                with lock:
                    calls.append(clock.time())
        finally:
            clock.leave()

    threads = [threading.Thread(target=writer, args=(n,)) for n in wants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    calls.sort()
    assert len(calls) == sum(wants)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 1 / RATE - 1e-6  # no two calls closer than the quota allows
    for start in calls:  # any one-second window holds at most RATE calls (to the µs)
        assert sum(1 for t in calls if start <= t < start + 1 - 1e-6) <= RATE
    # And no time wasted: the last call comes when the quota-bound minimum says.
    assert calls[-1] <= (sum(wants) - 1) / RATE + 1e-3


def test_a_lease_taken_meanwhile_by_another_process_is_respected(
    session: boto3.Session, infra: Provisioned
) -> None:
    now = [1000.0]
    waits: list[float] = []
    first = AccountBudget(
        session.client("dynamodb"),
        Settings().stats_table,
        "PutMetricAlarm",
        RATE,
        clock=lambda: now[0],
        sleep=waits.append,
    )
    second = AccountBudget(
        session.client("dynamodb"),
        Settings().stats_table,
        "PutMetricAlarm",
        RATE,
        clock=lambda: now[0],
        sleep=waits.append,
    )
    interfered: list[bool] = []

    def lease_between_read_and_write(**_: object) -> None:
        if not interfered:
            interfered.append(True)
            second.reserve(3)
            second.acquire()  # takes slots now, now + 1/3, now + 2/3

    first.dynamodb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lease_between_read_and_write
    )
    first.reserve(2)
    first.acquire()

    # The first writer's conditional write failed, it read the new end and leased after.
    assert first.leases == 1
    assert second.leases == 1
    assert waits == [pytest.approx(1.0)]  # its first slot comes after the other's three
    first.acquire()
    assert waits == [pytest.approx(1.0), pytest.approx(1.0 + 1 / RATE)]


def test_a_writer_that_stops_early_wastes_at_most_one_lease(
    session: boto3.Session, infra: Provisioned
) -> None:
    now = [50.0]
    waits: list[float] = []
    quitter = _budget(session, lease=6)
    quitter._clock = lambda: now[0]  # type: ignore[method-assign]
    quitter.reserve(100)
    quitter.acquire()  # leases 6 slots, uses one, and its Lambda ends
    other = AccountBudget(
        session.client("dynamodb"),
        Settings().stats_table,
        "PutMetricAlarm",
        RATE,
        clock=lambda: now[0],
        sleep=waits.append,
    )
    other.acquire()
    assert waits == [pytest.approx(6 / RATE)]


def test_put_and_delete_budgets_are_separate_quotas(
    session: boto3.Session, infra: Provisioned
) -> None:
    dynamodb = session.client("dynamodb")
    waits: list[float] = []
    puts = AccountBudget(
        dynamodb, "spawn-fleet-stats", "PutMetricAlarm", RATE, clock=lambda: 9.0, sleep=waits.append
    )
    deletes = AccountBudget(
        dynamodb, "spawn-fleet-stats", "DeleteAlarms", RATE, clock=lambda: 9.0, sleep=waits.append
    )
    puts.acquire()
    deletes.acquire()
    assert waits == []  # both first slots are now: neither waits for the other
