"""Per-user isolation of the HTTP API (SPEC §7, issue 9 item 6), on moto.

Ownership flows as in a deployment: instances carry `spawn:iam-user`, the lifecycle
handler records it on registry rows and array registrations, the fleet tick and the
alarm-notification consumer file per-owner snapshots and feeds. Requests are Lambda
proxy events carrying the caller's ARN in the request context, as API Gateway sends
them with IAM authorization (tests/apigw.py), handled by the app's own handler.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from boto3.dynamodb.types import TypeSerializer
from chalice.app import Chalice

from chalicelib import container as wiring
from chalicelib.alerts.notifications import Notifications
from chalicelib.alerts.publish import Alert
from chalicelib.api.arrays import arrays_api
from chalicelib.api.fleet import api as fleet_api
from chalicelib.api.history import history_api
from chalicelib.api.params import ALERTS_LIMIT_DEFAULT
from chalicelib.contract.openapi import document
from chalicelib.core.access import owner_key
from chalicelib.core.settings import Settings
from chalicelib.fleet.health import FleetHealth
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.fleet.lifecycle import Lifecycle
from chalicelib.fleet.snapshots import owner_snapshot_key
from chalicelib.fleet.stats import Stats
from chalicelib.progress.aggregator import ProgressAggregator
from chalicelib.progress.store import SummaryStore
from local.provision import Provisioned
from testkit.faults import count_calls
from tests import apigw
from tests.conftest import load_event
from tests.integration.conftest import T0, Fleet, container

ACCOUNT = "123456789012"
# As spawn tags them and API Gateway reports them: `sts:GetCallerIdentity().Arn`.
ALICE = f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice@example.com"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
# A reader configured by role; the caller is one of its sessions.
READER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/FleetOps"
READER = f"arn:aws:sts::{ACCOUNT}:assumed-role/FleetOps/oncall"
NOW = T0 + timedelta(minutes=5)
ALICE_ARRAYS = [f"alice-20260127-00000{n}" for n in range(3)]
BOB_ARRAYS = [f"bob-20260127-00000{n}" for n in range(2)]
LEGACY = "legacy-20260127-000000"  # launched without spawn:iam-user
_serialize = TypeSerializer().serialize


@dataclass
class World:
    fleet: Fleet
    settings: Settings
    stats: Stats
    store: SummaryStore
    aggregator: ProgressAggregator
    lifecycle: Lifecycle
    health: FleetHealth
    notifications: Notifications
    interruptions: Interruptions
    app: Chalice
    instances: dict[str, list[str]]

    def get(self, path: str, caller: str | None) -> tuple[int, Any]:
        return apigw.get(self.app, path, caller)

    def launch(self, array_id: str, owner: str | None, size: int = 2) -> list[str]:
        """Launch an array as spawn does (without index tags, which nothing here needs)."""
        tags = {
            "spawn:managed": "true",
            "spawn:job-array-id": array_id,
            "spawn:job-array-name": array_id.split("-")[0],
            "spawn:job-array-size": str(size),
        }
        if owner:
            tags["spawn:iam-user"] = owner
        return self.fleet.launch(size, tags)

    def running(self, *arrays: str) -> None:
        ids = [i for array_id in arrays for i in self.instances[array_id]]
        self.lifecycle.handle([self.fleet.event(i, "running", T0) for i in ids])

    def report(self, array_id: str, rows: int = 1) -> None:
        for index in range(rows):
            values = {
                "array_id": array_id,
                "task_index": index,
                "status": "completed",
                "tasks_completed": 3,
                "last_update": "2026-01-27T10:01:00Z",
                "instance_id": self.instances[array_id][0],
                "hostname": "host",
            }
            self.fleet.clients.dynamodb.put_item(
                TableName=self.settings.progress_table,
                Item={k: _serialize(v) for k, v in values.items()},
            )
        self.aggregator.recount(array_id)

    def alarm(self, instance_id: str | None, name: str | None = None) -> None:
        message = json.loads(
            load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]["Message"]
        )
        message["AlarmName"] = name or f"spawn-instance-{instance_id}-status"
        message["StateChangeTime"] = "2026-01-27T10:02:00.000+0000"
        message["Trigger"]["Dimensions"] = (
            [{"value": instance_id, "name": "InstanceId"}] if instance_id else []
        )
        self.notifications.handle(json.dumps(message), self.fleet.topic_arn)


@pytest.fixture
def world(fleet: Fleet, infra: Provisioned, monkeypatch: pytest.MonkeyPatch) -> World:
    settings = Settings(fleet_readers=(READER_ROLE,))
    dynamodb = fleet.clients.dynamodb
    stats = Stats(dynamodb, settings.stats_table)
    store = SummaryStore(dynamodb, settings.arrays_table)
    installed = container(fleet.clients, settings, clock=NOW.timestamp)
    # The container's publisher: it keeps each alert sent in the fleet's and owner's feeds.
    alerts = installed.alerts
    assert alerts.alerts_topic_arn == infra.arns["AlertsTopic"]
    history = installed.alert_feed
    app = Chalice(app_name="test-isolation")
    app.register_blueprint(fleet_api)
    app.register_blueprint(arrays_api)
    app.register_blueprint(history_api)
    world = World(
        fleet=fleet,
        settings=settings,
        stats=stats,
        store=store,
        aggregator=ProgressAggregator(
            dynamodb, store, settings, alerts, stats.array_info, clock=lambda: NOW
        ),
        lifecycle=fleet.lifecycle,
        health=FleetHealth(fleet.registry, stats, alerts, threshold=50.0, clock=lambda: NOW),
        notifications=Notifications(fleet.registry, history),
        interruptions=Interruptions(
            settings, dynamodb, fleet.ec2, fleet.registry, alerts, clock=lambda: NOW
        ),
        app=app,
        instances={},
    )
    # The routes read the installed container: this test's, on moto, at NOW.
    monkeypatch.setattr(wiring, "_installed", installed)
    for array_id in ALICE_ARRAYS:
        world.instances[array_id] = world.launch(array_id, ALICE)
    for array_id in BOB_ARRAYS:
        world.instances[array_id] = world.launch(array_id, BOB)
    world.instances[LEGACY] = world.launch(LEGACY, None, size=1)
    world.running(*world.instances)
    # Every array has reported but alice's last one, whose workers are all pending.
    for array_id in [*ALICE_ARRAYS[:-1], *BOB_ARRAYS, LEGACY]:
        world.report(array_id)
    return world


def listed(world: World, caller: str | None, limit: int = 2) -> list[str]:
    """Every array id `caller` sees in `GET /arrays`, following the cursors."""
    ids: list[str] = []
    path = f"/arrays?limit={limit}"
    while True:
        status, body = world.get(path, caller)
        assert status == 200, body
        ids += [a["array_id"] for a in body["arrays"]]
        if body["next"] is None:
            return ids
        path = f"/arrays?limit={limit}&cursor={quote(body['next'])}"


def test_each_caller_lists_only_their_own_arrays(world: World) -> None:
    assert listed(world, ALICE) == ALICE_ARRAYS
    assert listed(world, BOB) == BOB_ARRAYS
    _, body = world.get("/arrays", ALICE)
    pending = next(a for a in body["arrays"] if a["array_id"] == ALICE_ARRAYS[-1])
    assert pending["workers"]["pending"] == pending["workers"]["total"] == 2
    done = next(a for a in body["arrays"] if a["array_id"] == ALICE_ARRAYS[0])
    assert (done["name"], done["workers"]["completed"]) == ("alice", 1)


def test_a_reader_sees_every_array(world: World) -> None:
    # Readers page through the summaries: arrays that have reported, whoever owns them.
    reported = {*ALICE_ARRAYS[:-1], *BOB_ARRAYS, LEGACY}
    ids = listed(world, READER, limit=3)
    assert sorted(ids) == sorted(reported)
    for array_id in [*ALICE_ARRAYS, *BOB_ARRAYS, LEGACY]:
        for route in ("progress", "workers", "history"):
            status, _ = world.get(f"/arrays/{array_id}/{route}", READER)
            assert status == 200, (array_id, route)


def test_another_users_array_answers_like_an_unknown_one(world: World) -> None:
    unknown = world.get("/arrays/nobody-20260127-000000/progress", ALICE)
    assert unknown[0] == 404
    for array_id in [BOB_ARRAYS[0], LEGACY]:
        for route in ("progress", "workers", "workers?status=completed&limit=5", "history"):
            status, body = world.get(f"/arrays/{array_id}/{route}", ALICE)
            assert status == 404, (array_id, route)
            assert body == {
                "Code": "NotFoundError",
                "Message": unknown[1]["Message"].replace("nobody-20260127-000000", array_id),
            }
    assert world.get(f"/arrays/{BOB_ARRAYS[0]}/progress", BOB)[0] == 200
    assert world.get(f"/arrays/{ALICE_ARRAYS[0]}/progress", BOB)[0] == 404


def test_a_cursor_minted_for_someone_else_does_not_work(world: World) -> None:
    _, bobs = world.get("/arrays?limit=1", BOB)
    _, readers = world.get("/arrays?limit=1", READER)
    for cursor in (bobs["next"], readers["next"]):
        status, body = world.get(f"/arrays?limit=1&cursor={quote(cursor)}", ALICE)
        assert status == 400
        assert "cursor" in body["Message"]
    assert world.get(f"/arrays?limit=1&cursor={quote(bobs['next'])}", BOB)[0] == 200

    world.report(BOB_ARRAYS[0], rows=3)
    _, page = world.get(f"/arrays/{BOB_ARRAYS[0]}/workers?limit=1", BOB)
    cursor = quote(page["next"])
    # On bob's array alice learns nothing; on her own array, the cursor is refused.
    assert world.get(f"/arrays/{BOB_ARRAYS[0]}/workers?limit=1&cursor={cursor}", ALICE)[0] == 404
    assert world.get(f"/arrays/{ALICE_ARRAYS[0]}/workers?limit=1&cursor={cursor}", ALICE)[0] == 400
    # Bound to the caller, not merely to the array: a reader cannot reuse it either.
    assert world.get(f"/arrays/{BOB_ARRAYS[0]}/workers?limit=1&cursor={cursor}", READER)[0] == 400
    status, body = world.get(f"/arrays/{BOB_ARRAYS[0]}/workers?limit=1&cursor={cursor}", BOB)
    assert status == 200
    assert [w["task_index"] for w in body["workers"]] == [1]


def test_a_request_without_identity_sees_nothing(world: World) -> None:
    for path in (
        "/fleet",
        "/alerts",
        "/arrays",
        f"/arrays/{LEGACY}/progress",
        f"/arrays/{LEGACY}/workers",
        f"/arrays/{LEGACY}/history",
        "/arrays?limit=abc",
    ):
        status, body = world.get(path, None)
        assert status == 403, path
        assert body["Code"] == "ForbiddenError"
    assert world.get("/health", None) == (200, {"status": "ok"})


def test_with_isolation_off_everyone_sees_everything(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(api_isolation="off")
    off = container(world.fleet.clients, settings, clock=NOW.timestamp)
    monkeypatch.setattr(wiring, "_installed", off)
    for caller in (ALICE, None):
        assert world.get(f"/arrays/{BOB_ARRAYS[0]}/progress", caller)[0] == 200
        assert len(listed(world, caller, limit=10)) == 5


def test_an_array_cannot_be_taken_over_by_tagging_its_id(world: World) -> None:
    world.instances["intruder"] = world.launch(ALICE_ARRAYS[0], BOB, size=1)
    world.running("intruder")
    record = world.stats.array_record(ALICE_ARRAYS[0])
    assert record is not None
    assert record.owner == owner_key(ALICE)
    assert world.get(f"/arrays/{ALICE_ARRAYS[0]}/progress", ALICE)[0] == 200
    assert world.get(f"/arrays/{ALICE_ARRAYS[0]}/progress", BOB)[0] == 404
    assert ALICE_ARRAYS[0] not in listed(world, BOB)


def test_fleet_counts_only_what_the_caller_may_see(world: World) -> None:
    bobs = world.instances[BOB_ARRAYS[1]]
    world.alarm(bobs[0])
    warning = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
    warning["detail"]["instance-id"] = bobs[1]
    warning["time"] = (T0 + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert world.interruptions.on_warning(warning) == "counted"
    world.health.tick()

    _, alice = world.get("/fleet", ALICE)
    _, bob = world.get("/fleet", BOB)
    _, reader = world.get("/fleet", READER)
    assert (alice["instances"]["total"], bob["instances"]["total"]) == (6, 4)
    assert reader["instances"]["total"] == 11
    assert alice["active_arrays"] == ALICE_ARRAYS
    assert bob["active_arrays"] == BOB_ARRAYS
    assert alice["unhealthy"] == {"count": 0, "percent": 0.0, "instance_ids": []}
    assert bob["unhealthy"]["instance_ids"] == reader["unhealthy"]["instance_ids"] == [bobs[0]]
    assert alice["interruptions"] == {"last_hour": 0, "last_24h": 0, "total": 0}
    assert bob["interruptions"] == {"last_hour": 1, "last_24h": 1, "total": 1}
    assert reader["interruptions"]["total"] == 1
    assert alice["updated_at"] == reader["updated_at"] == "2026-01-27T10:05:00Z"
    assert "alerted" not in reader["unhealthy"]

    # When every row of bob's expires, his snapshot goes with them.
    for instance_id in [i for a in BOB_ARRAYS for i in world.instances[a]]:
        world.fleet.clients.dynamodb.delete_item(
            TableName=world.settings.instances_table, Key={"instance_id": {"S": instance_id}}
        )
    world.health.tick()
    assert world.stats.get_document(owner_snapshot_key(owner_key(BOB) or "")) is None
    _, bob = world.get("/fleet", BOB)
    assert (bob["instances"]["total"], bob["updated_at"]) == (0, None)
    assert world.get("/fleet", ALICE)[1]["instances"]["total"] == 6


def test_alerts_show_only_the_callers_instances(world: World) -> None:
    alices, bobs = world.instances[ALICE_ARRAYS[0]], world.instances[BOB_ARRAYS[0]]
    world.alarm(alices[0])
    world.alarm(bobs[0])
    world.alarm(None, name="spawn-fleet-unhealthy")

    def seen(caller: str) -> list[Any]:
        status, body = world.get("/alerts?limit=10", caller)
        assert status == 200
        return sorted(str(a.get("instance_id")) for a in body["alerts"])

    assert seen(ALICE) == [alices[0]]
    assert seen(BOB) == [bobs[0]]
    assert seen(READER) == sorted([alices[0], bobs[0], "None"])
    _, body = world.get("/alerts?limit=5", ALICE)
    assert body["alerts"][0]["array_id"] == ALICE_ARRAYS[0]


def test_alerts_sent_go_to_their_owners_feed_and_the_readers_never_anothers(
    world: World,
) -> None:
    alices = world.instances[ALICE_ARRAYS[0]][0]
    event = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
    event["detail"] = {"instance-id": alices, "instance-action": "terminate"}
    assert world.interruptions.on_warning(event) == "counted"
    # An array alert names no owner: the publisher finds it from the array's registration.
    world.aggregator.alerts.publish(
        Alert("array_failing", "critical", "Array failing", {}, BOB_ARRAYS[0], NOW)
    )
    world.aggregator.alerts.publish(Alert("fleet_unhealthy", "critical", "Fleet", {}, None, NOW))

    def seen(caller: str, query: str = "kind=system") -> list[tuple[str, str | None]]:
        status, body = world.get(f"/alerts?{query}", caller)
        assert status == 200, body
        return [(a["event_type"], a.get("array_id")) for a in body["alerts"]]

    assert seen(ALICE) == [("spot_interruption", ALICE_ARRAYS[0])]
    assert seen(BOB) == [("array_failing", BOB_ARRAYS[0])]
    # The warning (11:30:12) is after NOW (10:05); entries of one time by type, descending.
    assert seen(READER) == [
        ("spot_interruption", ALICE_ARRAYS[0]),
        ("fleet_unhealthy", None),
        ("array_failing", BOB_ARRAYS[0]),
    ]
    assert seen(BOB, f"array_id={ALICE_ARRAYS[0]}") == []


def test_an_owners_listing_reads_one_page_whatever_others_have(world: World) -> None:
    for n in range(100):
        world.stats.register_array(f"crowd-20260127-{n:06x}", "crowd", 4, owner_key(BOB))
    calls = count_calls(world.fleet.clients.dynamodb)
    status, body = world.get("/arrays?limit=2", ALICE)
    assert status == 200
    assert [a["array_id"] for a in body["arrays"]] == ALICE_ARRAYS[:2]
    assert body["next"] is not None
    # One Query of the owner index (3 registrations), one BatchGetItem of 2 summaries,
    # one of their interruption counters (each array's shards), one of their cost
    # documents (chalicelib.cost.store).
    assert calls == {"Query": 1, "BatchGetItem": 3}


def test_an_encoded_path_parameter_is_decoded_once_at_the_edge(world: World) -> None:
    # API Gateway REST APIs pass path parameters still percent-encoded; the CLI sends
    # `:` as `%3A` (aws/chalice#688, #511).
    array_id = "team:alice-20260127-00000a"
    world.instances[array_id] = world.launch(array_id, ALICE)
    world.running(array_id)
    world.report(array_id)
    encoded = quote(array_id, safe="")
    assert encoded == "team%3Aalice-20260127-00000a"
    event = apigw.proxy_event(world.app, f"/arrays/{encoded}/progress", ALICE)
    assert event["pathParameters"] == {"array_id": encoded}
    status, body = world.get(f"/arrays/{encoded}/progress", ALICE)
    assert status == 200, body
    assert body["array_id"] == array_id
    for route in ("workers", "history"):
        status, body = world.get(f"/arrays/{encoded}/{route}", ALICE)
        assert status == 200, (route, body)
    # Still another user's array, encoded or not.
    assert world.get(f"/arrays/{encoded}/progress", BOB)[0] == 404
    # Double-encoded input is decoded once, to `team%3Aalice-...`: a malformed id.
    twice = quote(encoded, safe="")
    assert twice == "team%253Aalice-20260127-00000a"
    for route in ("progress", "workers", "history"):
        status, body = world.get(f"/arrays/{twice}/{route}", ALICE)
        assert status == 400, (route, body)
        assert body["Code"] == "BadRequestError"


def test_alerts_without_a_limit_give_the_default_the_openapi_document_states(
    world: World,
) -> None:
    instance = world.instances[ALICE_ARRAYS[0]][0]
    message = json.loads(
        load_event("sns-alarm-notification-alarm.json")["Records"][0]["Sns"]["Message"]
    )
    message["AlarmName"] = f"spawn-instance-{instance}-status"
    message["Trigger"]["Dimensions"] = [{"value": instance, "name": "InstanceId"}]
    for minute in range(ALERTS_LIMIT_DEFAULT + 5):
        message["StateChangeTime"] = f"2026-01-27T10:{minute:02d}:00.000+0000"
        world.notifications.handle(json.dumps(message), world.fleet.topic_arn)
    _, body = world.get("/alerts", READER)
    assert len(body["alerts"]) == ALERTS_LIMIT_DEFAULT
    described = document()["components"]["parameters"]["AlertsLimit"]["description"]
    assert described.endswith(f"default {ALERTS_LIMIT_DEFAULT}")
