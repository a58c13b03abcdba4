"""`array_budget` alerts (SPEC §14) through the real tick on moto: once per threshold per
array, warning first, across duplicate ticks, conflicting saves and concurrent copies.

The cost engine (issue #22's core) fills `progress_view(...)["cost"]`; here the view is
given a cost of SPEC §14's shape that follows the array's completed tasks (1 USD per
task), so the test drives the cost with ordinary progress rows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest

from chalicelib.alerts.feed import AlertFilter
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.progress import aggregator as aggregator_module
from chalicelib.progress import summary as summary_module
from local.moto_serial import serialize_dynamodb
from local.provision import Provisioned
from testkit.streams import T0, Workers
from tests.integration.conftest import container

A = "render-20260127-a1b2c3"
BUDGET = 10.0


def cost_of(usd: float, projected: float | None, budget: float | None = BUDGET) -> dict[str, Any]:
    return {
        "usd": usd,
        "usd_per_hour": 1.0,
        "projected_usd": projected,
        "budget_usd": budget,
        "by_lifecycle": {"spot": usd, "on_demand": 0.0},
        "on_demand_equivalent_usd": usd * 3,
        "breakdown": {"compute": usd, "storage": 0.0, "ipv4": 0.0},
        "price_source": "snapshot",
        "as_of": "2026-01-27T10:00:00Z",
    }


@pytest.fixture
def projected_extra(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The view's cost: `usd` = tasks completed; `projected_usd` = usd + extra["usd"]."""
    extra = {"usd": 0.0}
    real = summary_module.progress_view

    def with_cost(*args: Any, **kwargs: Any) -> dict[str, Any]:
        view = real(*args, **kwargs)
        usd = float(view["tasks_completed"])
        view["cost"] = cost_of(usd, usd + extra["usd"])
        return view

    monkeypatch.setattr(aggregator_module, "progress_view", with_cost)
    return extra


class Budgeted:
    def __init__(self, session: boto3.Session, infra: Provisioned) -> None:
        self.session = session
        self.infra = infra
        self.wiring = self.copy()
        self.workers = Workers(
            self.wiring.clients.dynamodb,
            self.wiring.settings.progress_table,
            infra.stream_arns["ProgressTable"],
        )
        sqs, sns = session.client("sqs"), session.client("sns")
        self.url = sqs.create_queue(QueueName="budget-alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        for topic in ("AlertsTopic", "CriticalTopic"):
            sns.subscribe(
                TopicArn=infra.arns[topic],
                Protocol="sqs",
                Endpoint=arn["Attributes"]["QueueArn"],
            )

    def copy(self) -> Container:
        """One Lambda copy's wiring (its own clients and aggregator)."""
        return container(Clients(self.session))

    def done(self, tasks: int) -> None:
        """Worker 0 has completed `tasks` tasks (so the cost is `tasks` USD)."""
        record = self.workers.write(A, 0, "running", tasks)
        self.wiring.progress.handle_stream({"Records": [record]})

    def sent(self) -> list[tuple[str, str]]:
        """(event_type, severity) of every budget alert SNS delivered, in order."""
        sqs = self.session.client("sqs")
        seen = []
        while True:
            got = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(json.loads(message["Body"])["Message"])
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                if body["event_type"] == "array_budget":
                    seen.append((body["event_type"], body["severity"]))
        return seen

    def feed(self) -> list[str]:
        entries = self.wiring.alert_feed.latest(50, only=AlertFilter(event_type="array_budget"))
        return [entry["severity"] for entry in reversed(entries)]


@pytest.fixture
def budgeted(session: boto3.Session, infra: Provisioned, projected_extra: Any) -> Budgeted:
    return Budgeted(session, infra)


def at(seconds: int) -> Any:
    return T0 + timedelta(seconds=seconds)


def test_warning_at_90_percent_then_critical_at_100_each_once(budgeted: Budgeted) -> None:
    tick = budgeted.wiring.progress.tick
    budgeted.done(8)
    tick(at(10))
    assert budgeted.sent() == []
    budgeted.done(9)
    tick(at(20))
    tick(at(30))
    assert budgeted.sent() == [("array_budget", "warning")]
    budgeted.done(10)
    tick(at(40))
    budgeted.done(12)
    tick(at(50))
    assert budgeted.sent() == [("array_budget", "critical")]
    assert budgeted.feed() == ["warning", "critical"]
    stored = budgeted.wiring.summary_store.get(A)
    assert stored is not None
    assert stored.budget_alerted == ("warning", "critical")


def test_a_jump_past_both_sends_both_warning_first(budgeted: Budgeted) -> None:
    budgeted.done(15)
    budgeted.wiring.progress.tick(at(10))
    assert budgeted.sent() == [("array_budget", "warning"), ("array_budget", "critical")]
    # Same tick, same type, same array: still two feed entries.
    assert budgeted.feed() == ["warning", "critical"]


def test_projected_cost_warns_but_only_actual_cost_is_critical(
    budgeted: Budgeted, projected_extra: dict[str, float]
) -> None:
    projected_extra["usd"] = 20.0
    budgeted.done(2)
    budgeted.wiring.progress.tick(at(10))
    assert budgeted.sent() == [("array_budget", "warning")]
    budgeted.done(9)
    budgeted.wiring.progress.tick(at(20))
    assert budgeted.sent() == []


def test_without_cost_or_budget_nothing_is_sent(
    budgeted: Budgeted, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = summary_module.progress_view
    monkeypatch.setattr(
        aggregator_module,
        "progress_view",
        lambda *a, **k: {**real(*a, **k), "cost": cost_of(50.0, 60.0, budget=None)},
    )
    budgeted.done(50)
    budgeted.wiring.progress.tick(at(10))
    monkeypatch.setattr(aggregator_module, "progress_view", real)  # no `cost` at all
    budgeted.wiring.progress.tick(at(20))
    assert budgeted.sent() == []


def test_duplicate_ticks_of_two_copies_send_each_level_once(budgeted: Budgeted) -> None:
    budgeted.done(11)
    first, second = budgeted.copy(), budgeted.copy()
    first.progress.tick(at(10))
    second.progress.tick(at(10))  # the same schedule event, delivered twice
    second.progress.tick(at(70))
    assert budgeted.sent() == [("array_budget", "warning"), ("array_budget", "critical")]


def test_a_save_conflict_after_sending_does_not_send_again(budgeted: Budgeted) -> None:
    """Another writer (the stream) saves between the tick's read and its save: the tick
    reads again, finds the levels still due, and does not publish them a second time."""
    budgeted.done(12)
    wiring = budgeted.copy()
    store = wiring.summary_store
    real_save = store.save
    calls = {"n": 0}

    def racing_save(summary: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            budgeted.done(13)  # a stream change lands first: this save conflicts
        return real_save(summary)

    store.save = racing_save  # type: ignore[method-assign]
    wiring.progress.tick(at(10))
    assert calls["n"] >= 2
    assert wiring.progress.conflicts >= 1
    assert budgeted.sent() == [("array_budget", "warning"), ("array_budget", "critical")]
    stored = store.get(A)
    assert stored is not None
    assert stored.budget_alerted == ("warning", "critical")


def test_concurrent_ticks_under_the_schedule_lease_send_each_level_once(
    budgeted: Budgeted,
) -> None:
    """Two copies fired together run the tick the way app.py does (`_alone`).

    DynamoDB applies conditional writes to one item one at a time; in-process moto does
    not (two threads can both pass a condition), so its table operations take a lock.
    """
    serialize_dynamodb()
    budgeted.done(11)
    copies = [budgeted.copy() for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(wiring: Container) -> Callable[[], None]:
        def body() -> None:
            try:
                barrier.wait()
                with wiring.schedule_lease("progress_tick", 60).held() as mine:
                    if mine:
                        wiring.progress.tick(at(10))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return body

    threads = [threading.Thread(target=run(w)) for w in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for wiring in copies:  # later runs, once the lease is free again
        wiring.progress.tick(at(80))
    assert budgeted.sent() == [("array_budget", "warning"), ("array_budget", "critical")]
