"""Array history on moto: the tick records it, the route reads it in O(1) (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from chalice.test import Client

from chalicelib import container
from chalicelib.api.history import history_api
from chalicelib.progress.history import (
    SPILL_AFTER_SECONDS,
    HistoryStore,
    archive_key,
    recent_key,
)
from local.provision import Provisioned
from tests.integration.test_api_arrays import BIG, NOW, T0, Api


def view(array_id: str, total: int, completed: int, failed: int = 0, **extra: int) -> Any:
    running = total - completed - failed
    workers = {"total": total, "completed": completed, "failed": failed, "running": running}
    return {"array_id": array_id, "workers": {**workers, **extra}}


@pytest.fixture
def store(session: boto3.Session, infra: Provisioned) -> HistoryStore:
    return HistoryStore(session.client("dynamodb"), infra.names["StatsTable"])


def test_points_come_back_in_order_and_since_filters(store: HistoryStore) -> None:
    for minute in range(10):
        store.record(view(BIG, 10, minute), T0 + timedelta(minutes=minute))
    points = store.points(BIG, None, T0 + timedelta(minutes=10))
    assert points is not None
    assert [p.completed for p in points] == list(range(10))
    assert all(p.lost is None for p in points)
    later = store.points(BIG, T0 + timedelta(minutes=7), T0 + timedelta(minutes=10))
    assert later is not None
    assert [p.completed for p in later] == [7, 8, 9]
    assert store.points("nobody", None, T0) is None


def test_a_duplicate_or_late_tick_changes_nothing(store: HistoryStore) -> None:
    store.record(view(BIG, 10, 5), T0 + timedelta(minutes=5))
    store.record(view(BIG, 10, 9), T0 + timedelta(minutes=5))
    store.record(view(BIG, 10, 1), T0 + timedelta(minutes=1))
    points = store.points(BIG, None, T0 + timedelta(minutes=6))
    assert points is not None
    assert [(p.t - int(T0.timestamp()), p.completed) for p in points] == [(300, 5)]


def test_old_points_spill_to_the_archive_once_an_hour_and_reads_stay_two_items(
    store: HistoryStore,
) -> None:
    puts: list[str] = []
    store.dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.PutItem",
        lambda params, **_: puts.append(params["Item"]["key"]["S"]),
    )
    minutes = 6 * 60
    for minute in range(minutes):
        store.record(view(BIG, 1000, minute, lost=1), T0 + timedelta(minutes=minute))
    assert puts.count(recent_key(BIG)) == minutes
    # The first spill once the oldest point is over 3 h old, then one an hour or so.
    first = SPILL_AFTER_SECONDS // 60 + 1
    assert puts.count(archive_key(BIG)) == len(range(first, minutes, 61)) == 3
    before = store.items_read
    points = store.points(BIG, None, T0 + timedelta(minutes=minutes))
    assert store.items_read - before == 2
    assert points is not None
    assert [p.completed for p in points] == list(range(minutes))
    assert {p.lost for p in points} == {1}
    # A recent `since` reads the recent item alone.
    before = store.items_read
    store.points(BIG, T0 + timedelta(minutes=minutes - 30), T0 + timedelta(minutes=minutes))
    assert store.items_read - before == 1


def test_a_failing_table_never_breaks_the_tick(store: HistoryStore) -> None:
    store.table = "no-such-table"
    store.record(view(BIG, 10, 1), T0)  # logged, not raised


@pytest.fixture
def api(
    session: boto3.Session, infra: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Api, HistoryStore, Client]]:
    harness = Api(session, infra)
    history = harness.wiring.array_history
    harness.aggregator.history = history
    monkeypatch.setattr(container, "_installed", harness.wiring)
    harness.app.register_blueprint(history_api)
    for index in range(6):
        harness.write(BIG, index, "completed" if index < 4 else "running")
    harness.aggregator.recount(BIG)
    harness.stats.register_array(BIG, "render", 10)
    harness.stats.register_array("tagged-20260127-000000", "tagged", 3)
    with Client(harness.app) as client:
        yield harness, history, client


def test_the_tick_feeds_the_route(api: tuple[Api, HistoryStore, Client]) -> None:
    harness, _, client = api
    harness.aggregator.tick(NOW)
    status, body = harness.get(client, f"/arrays/{BIG}/history")
    assert status == 200
    assert body == {
        "array_id": BIG,
        "points": [
            {
                "time": "2026-01-27T10:20:00Z",
                "total": 10,
                "completed": 4,
                "failed": 0,
                "running": 2,
                "lost": body["points"][0]["lost"],  # counted once the summary has it
                "tasks_completed": 12,  # six rows of 2 tasks each
                "tasks_total": None,  # no row declares a total
            }
        ],
    }
    status, body = harness.get(client, f"/arrays/{BIG}/history?since=2026-01-27T10:21:00Z")
    assert (status, body["points"]) == (200, [])


def test_a_known_array_without_history_is_empty_and_an_unknown_one_404(
    api: tuple[Api, HistoryStore, Client],
) -> None:
    harness, _, client = api
    assert harness.get(client, "/arrays/tagged-20260127-000000/history") == (
        200,
        {"array_id": "tagged-20260127-000000", "points": []},
    )
    status, body = harness.get(client, "/arrays/nobody-20260127-abcdef/history")
    assert (status, body["Code"]) == (404, "NotFoundError")


@pytest.mark.parametrize(
    "since", ["yesterday", "2026-01-27", "2026-01-27T10:00:00+02:00", "", "1" * 80]
)
def test_a_bad_since_is_400(api: tuple[Api, HistoryStore, Client], since: str) -> None:
    harness, _, client = api
    status, body = harness.get(client, f"/arrays/{BIG}/history?since={quote(since)}")
    assert status == 400
    assert "since" in body["Message"]


def test_a_malformed_id_is_400(api: tuple[Api, HistoryStore, Client]) -> None:
    harness, _, client = api
    status, body = harness.get(client, "/arrays/-bad/history")
    assert (status, body["Code"]) == (400, "BadRequestError")
