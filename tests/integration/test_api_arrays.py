"""The array routes through `chalice.test.Client`, against moto tables (SPEC §7)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from chalice.app import Chalice
from chalice.test import Client

from chalicelib import container
from chalicelib.alerts.publish import AlertPublisher
from chalicelib.api.arrays import arrays_api
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.progress.aggregator import ProgressAggregator
from local.provision import Provisioned
from tests.conftest import ROOT, load_event
from tests.integration.conftest import Fleet

T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=20)
BIG = "render-20260127-a1b2c3"
_serialize = TypeSerializer().serialize


class Api:
    """A tiny app with the blueprint, its dependencies pointing at moto."""

    def __init__(self, session: boto3.Session, infra: Provisioned) -> None:
        # As `chalice.test.Client` sends no IAM identity, these tests see everything, as
        # the local stack does; isolation is tested in test_api_isolation.py.
        self.settings = Settings(api_isolation="off")
        clients = Clients(session)
        self.dynamodb = clients.dynamodb
        # What the routes read: the container, on moto, at NOW.
        self.wiring = Container(self.settings, clients, clock=NOW.timestamp)
        self.store = self.wiring.summary_store
        self.stats = self.wiring.stats
        self.aggregator = ProgressAggregator(
            self.dynamodb,
            self.store,
            self.settings,
            AlertPublisher(clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]),
            self.stats.array_info,
            clock=lambda: NOW,
        )
        self.app = Chalice(app_name="test-arrays")
        self.app.register_blueprint(arrays_api)

    def write(self, array_id: str, index: int, status: str = "running", **extra: Any) -> None:
        values = {
            "array_id": array_id,
            "task_index": index,
            "status": status,
            "tasks_completed": 2,
            # Workers 0..9 last reported long ago: stalled if running.
            "last_update": (T0 if index < 10 else NOW).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "instance_id": f"i-{index:017x}",
            "hostname": f"host-{index}",
            **extra,
        }
        self.dynamodb.put_item(
            TableName=self.settings.progress_table,
            Item={k: _serialize(v) for k, v in values.items()},
        )

    def get(self, client: Client, path: str) -> tuple[int, Any]:
        response = client.http.get(path)
        return response.status_code, json.loads(response.body) if response.body else None


@pytest.fixture
def api(
    session: boto3.Session, infra: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Api, Client]]:
    harness = Api(session, infra)
    monkeypatch.setattr(container, "_installed", harness.wiring)
    statuses = ["running", "completed", "failed"]
    for index in range(57):
        harness.write(BIG, index, statuses[index % 3])
    harness.write(BIG, 57, "exploded")
    harness.write(BIG, 58, "running", tasks_completed="lots")
    harness.aggregator.recount(BIG)
    for n in range(5):
        harness.write(f"small-{n}", 0, "completed")
        harness.aggregator.recount(f"small-{n}")
    harness.stats.register_array(BIG, "render", 100)
    with Client(harness.app) as client:
        yield harness, client


def test_progress_has_the_spec_shape(api: tuple[Api, Client]) -> None:
    harness, client = api
    status, body = harness.get(client, f"/arrays/{BIG}/progress")
    assert status == 200
    assert body["array_id"] == BIG
    assert (body["name"], body["size"]) == ("render", 100)
    assert body["workers"] == {
        "total": 100,
        "pending": 41,
        "running": 19,
        "completed": 19,
        "failed": 19,
        "lost": 0,
        "stalled": 4,  # running rows 0, 3, 6, 9 reported 20 minutes ago
        "invalid": 2,
    }
    assert body["tasks_completed"] == 57 * 2
    assert body["percent_complete"] == 38.0
    assert body["started_at"] == "2026-01-27T10:00:00Z"
    assert body["updated_at"] == "2026-01-27T10:20:00Z"
    assert body["eta"] is None
    assert body["eta_seconds"] is None
    assert len(body["recent"]) == 5
    assert all(row["last_update"].endswith("Z") for row in body["recent"])


def test_an_array_known_only_from_its_tags_is_all_pending(api: tuple[Api, Client]) -> None:
    harness, client = api
    harness.stats.register_array("new-20260127-000000", "new", 8)
    status, body = harness.get(client, "/arrays/new-20260127-000000/progress")
    assert status == 200
    assert body["workers"]["pending"] == body["workers"]["total"] == 8


@pytest.mark.parametrize(
    "array_id", ["-leading-dash", "a" * 129, "has space", "semi;colon", "slash%2Fx", "é"]
)
def test_malformed_array_ids_are_400(api: tuple[Api, Client], array_id: str) -> None:
    harness, client = api
    for route in ("progress", "workers"):
        status, body = harness.get(client, f"/arrays/{quote(array_id, safe='%')}/{route}")
        assert status == 400, (array_id, route)
        assert body["Code"] == "BadRequestError"


def test_unknown_arrays_are_404(api: tuple[Api, Client]) -> None:
    harness, client = api
    for route in ("progress", "workers", "workers?status=failed"):
        status, body = harness.get(client, f"/arrays/nobody-20260127-abcdef/{route}")
        assert status == 404, route
        assert body["Code"] == "NotFoundError"


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "1.5", "", "1e2", "99999999999"])
def test_bad_limits_are_400(api: tuple[Api, Client], limit: str) -> None:
    harness, client = api
    for path in (f"/arrays/{BIG}/workers", "/arrays"):
        status, body = harness.get(client, f"{path}?limit={quote(limit)}")
        assert status == 400, (path, limit)
        assert "limit" in body["Message"]


def test_a_bad_status_is_400(api: tuple[Api, Client]) -> None:
    harness, client = api
    status, body = harness.get(client, f"/arrays/{BIG}/workers?status=sleeping")
    assert status == 400
    assert "status" in body["Message"]


def pages(harness: Api, client: Client, path: str) -> Iterator[dict[str, Any]]:
    separator = "&" if "?" in path else "?"
    status, body = harness.get(client, path)
    while True:
        assert status == 200, body
        yield body
        if body["next"] is None:
            return
        status, body = harness.get(client, f"{path}{separator}cursor={quote(body['next'])}")


def test_workers_paginate_through_cursors_end_to_end(api: tuple[Api, Client]) -> None:
    harness, client = api
    seen = list(pages(harness, client, f"/arrays/{BIG}/workers?limit=7"))
    assert [len(p["workers"]) for p in seen] == [7] * 8 + [3]
    rows = [row for p in seen for row in p["workers"]]
    assert [row["task_index"] for row in rows] == list(range(59))
    assert rows[0]["stalled"] is True  # running, reported 20 minutes ago
    assert rows[10]["stalled"] is False  # running, reported now
    assert rows[1]["stalled"] is False  # completed
    assert rows[57]["status"] == "invalid"
    assert "status" in rows[57]["invalid_reason"]
    assert rows[58]["attributes"]["tasks_completed"] == "lots"


def test_workers_filter_by_status(api: tuple[Api, Client]) -> None:
    harness, client = api
    seen = list(pages(harness, client, f"/arrays/{BIG}/workers?status=failed&limit=4"))
    indexes = [row["task_index"] for p in seen for row in p["workers"]]
    assert indexes == list(range(2, 57, 3))
    invalid = list(pages(harness, client, f"/arrays/{BIG}/workers?status=invalid"))
    assert [row["task_index"] for p in invalid for row in p["workers"]] == [57, 58]
    _, body = harness.get(client, f"/arrays/{BIG}/workers")
    assert len(body["workers"]) == 50  # the default limit


def test_arrays_paginate_through_cursors(api: tuple[Api, Client]) -> None:
    harness, client = api
    seen = list(pages(harness, client, "/arrays?limit=2"))
    assert [len(p["arrays"]) for p in seen] == [2, 2, 2]
    ids = sorted(a["array_id"] for p in seen for a in p["arrays"])
    assert ids == sorted([BIG, *(f"small-{n}" for n in range(5))])
    big = next(a for p in seen for a in p["arrays"] if a["array_id"] == BIG)
    assert big["workers"]["total"] == 100


def test_arrays_items_carry_tasks_basis_and_a_real_interruption_count(
    api: tuple[Api, Client], fleet: Fleet
) -> None:
    harness, client = api
    tasked = "tasked-20260127-d4d4d4"
    for index, done in enumerate((40, 0, 0, 0)):
        harness.write(tasked, 10 + index, tasks_completed=done, tasks_total=100)
    harness.aggregator.recount(tasked)
    # A spot interruption of one of BIG's instances, through the handler, as EventBridge
    # delivers it (MANAGED tags the instance with BIG's id).
    [instance] = fleet.launch()
    publisher = AlertPublisher(
        fleet.clients.sns, fleet.infra.arns["AlertsTopic"], fleet.infra.arns["CriticalTopic"]
    )
    handler = Interruptions(
        fleet.settings, fleet.clients.dynamodb, fleet.ec2, fleet.registry, publisher
    )
    warning = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
    warning["detail"] = {"instance-id": instance, "instance-action": "terminate"}
    handler.on_warning(warning)
    arrays = {a["array_id"]: a for p in pages(harness, client, "/arrays") for a in p["arrays"]}
    assert arrays[BIG]["interruptions"] == 1
    assert arrays[BIG]["progress_basis"] == "workers"  # no row declares a total
    assert arrays[BIG]["tasks"]["total"] is None
    assert arrays["small-0"]["interruptions"] == 0
    assert arrays[tasked]["progress_basis"] == "tasks"
    assert arrays[tasked]["tasks"] == {
        "completed": 40,
        "total": 400,
        "percent": 10.0,
        "total_estimated": False,
    }
    assert arrays[tasked]["percent_complete"] == 10.0
    assert arrays[tasked]["interruptions"] == 0
    _, body = harness.get(client, f"/arrays/{BIG}/progress")
    assert body["interruptions"] == 1


def test_tampered_or_foreign_cursors_are_400(api: tuple[Api, Client]) -> None:
    harness, client = api
    _, first = harness.get(client, f"/arrays/{BIG}/workers?limit=5")
    cursor = first["next"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    other_array = "small-0"
    for path in (
        f"/arrays/{BIG}/workers?limit=5&cursor={quote(tampered)}",
        f"/arrays/{BIG}/workers?limit=5&cursor=garbage",
        f"/arrays/{other_array}/workers?limit=5&cursor={quote(cursor)}",
        f"/arrays/{BIG}/workers?status=failed&cursor={quote(cursor)}",
        f"/arrays?cursor={quote(cursor)}",
    ):
        status, body = harness.get(client, path)
        assert status == 400, path
        assert "cursor" in body["Message"]


def test_every_array_route_requires_iam() -> None:
    # In a fresh interpreter: Chalice pops `authorizer` from a blueprint's route options
    # when it registers them, so only a blueprint's first registration carries it.
    script = (
        "import json\n"
        "from chalice.app import Chalice\n"
        "from chalicelib.api.arrays import arrays_api\n"
        "app = Chalice(app_name='iam-check')\n"
        "app.register_blueprint(arrays_api)\n"
        "print(json.dumps({path: [type(e.authorizer).__name__ for e in methods.values()]"
        " for path, methods in app.routes.items()}))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(result.stdout) == {
        "/arrays": ["IAMAuthorizer"],
        "/arrays/{array_id}/progress": ["IAMAuthorizer"],
        "/arrays/{array_id}/workers": ["IAMAuthorizer"],
    }
