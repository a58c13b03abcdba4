"""Worker logs and errors in the API (SPEC §16), on moto's CloudWatch Logs.

Log events are written with boto3 in the agreed naming (`{array_id}/{task_index}/
{instance_id}` by the kit, `{instance_id}` by the CloudWatch agent) at real times, as
moto keeps only events from the last 14 days. Requests go through the app's own handler
as API Gateway sends them with IAM auth (tests/apigw.py), so isolation is exercised.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config
from chalice.app import Chalice
from spawn_report.logs import stream_name

from chalicelib import container as wiring
from chalicelib.api.arrays import arrays_api
from chalicelib.api.logs import logs_api
from chalicelib.container import Container
from chalicelib.core.settings import Settings
from chalicelib.worker_logs import reader
from chalicelib.worker_logs.bounds import LINE_MAX
from chalicelib.worker_logs.reader import Budget, Position, WorkerLogs
from local.provision import Provisioned
from testkit.faults import count_calls, throttle
from tests import apigw
from tests.conftest import ROOT
from tests.contract import check_response
from tests.integration.conftest import T0, Fleet, container

ACCOUNT = "123456789012"
ALICE = f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice@example.com"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
READER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/FleetOps"
READER = f"arn:aws:sts::{ACCOUNT}:assumed-role/FleetOps/oncall"
GROUP = "/aws/spawn/workers"
ARRAY = "render-20260127-a1b2c3"
BOBS = "bob-20260127-000000"
_serialize = TypeSerializer().serialize


@dataclass
class World:
    fleet: Fleet
    app: Chalice
    installed: Container
    instances: dict[str, list[str]]
    now_ms: int

    def get(self, path: str, caller: str | None = ALICE) -> tuple[int, Any]:
        status, body = apigw.get(self.app, path, caller)
        if status in (200, 400, 404):
            check_response(path, status, body)  # the OpenAPI document's schemas
        return status, body

    def row(self, array_id: str, index: int, instance_id: str, **extra: Any) -> None:
        values = {
            "array_id": array_id,
            "task_index": index,
            "status": "failed",
            "tasks_completed": 1,
            "last_update": "2026-01-27T10:01:00Z",
            "instance_id": instance_id,
            "hostname": "host",
            **extra,
        }
        self.fleet.clients.dynamodb.put_item(
            TableName="spawn-progress", Item={k: _serialize(v) for k, v in values.items()}
        )

    def put(self, stream: str, events: list[tuple[int, str]]) -> None:
        """Write (timestamp ms, message) events to a stream, creating it."""
        logs = self.fleet.clients.logs
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        ordered = sorted(events, key=lambda e: e[0])
        for start in range(0, len(ordered), 5000):
            batch = ordered[start : start + 5000]
            logs.put_log_events(
                logGroupName=GROUP,
                logStreamName=stream,
                logEvents=[{"timestamp": t, "message": m} for t, m in batch],
            )

    def lines(self, path: str, caller: str | None = ALICE) -> list[list[dict[str, str]]]:
        """Every page of a logs route, following `next`, newest page first."""
        pages = []
        url = path
        while True:
            status, body = self.get(url, caller)
            assert status == 200, body
            pages.append(body["lines"])
            if body["next"] is None:
                return pages
            joiner = "&" if "?" in path else "?"
            url = f"{path}{joiner}cursor={quote(body['next'])}"


@pytest.fixture
def world(fleet: Fleet, infra: Provisioned, monkeypatch: pytest.MonkeyPatch) -> World:
    settings = Settings(fleet_readers=(READER_ROLE,))
    installed = container(fleet.clients, settings)
    monkeypatch.setattr(wiring, "_installed", installed)
    app = Chalice(app_name="test-logs")
    app.register_blueprint(arrays_api)
    app.register_blueprint(logs_api)
    instances = {}
    for array_id, owner in ((ARRAY, ALICE), (BOBS, BOB)):
        tags = {
            "spawn:managed": "true",
            "spawn:job-array-id": array_id,
            "spawn:job-array-size": "4",
            "spawn:iam-user": owner,
        }
        instances[array_id] = fleet.launch(4, tags)
    fleet.lifecycle.handle(
        [fleet.event(i, "running", T0) for ids in instances.values() for i in ids]
    )
    logs = fleet.clients.logs
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=GROUP)
    # Whole seconds, a minute ago: moto keeps events of the last 14 days only.
    now_ms = (int(time.time()) - 60) * 1000
    return World(fleet, app, installed, instances, now_ms)


def logs_path(array_id: str, index: int, query: str = "") -> str:
    return f"/arrays/{array_id}/workers/{index}/logs" + (f"?{query}" if query else "")


def test_the_tail_pages_back_through_every_line_of_a_retried_task(world: World) -> None:
    old, new = world.instances[ARRAY][:2]
    world.row(ARRAY, 0, new, status="running", lost_instance_id=old)
    # The task ran on `old` first, then on `new`; several lines share a millisecond.
    base = world.now_ms - 3_600_000
    first = [(base + (i // 3) * 1000, f"old {i}") for i in range(90)]
    second = [(base + 100_000 + (i // 5) * 10, f"new {i}") for i in range(170)]
    world.put(f"{ARRAY}/0/{old}", first)
    world.put(f"{ARRAY}/0/{new}", second)
    # Another task's stream and another array's are never read.
    world.put(f"{ARRAY}/1/{old}", [(base, "not this task")])
    world.put(f"{ARRAY}0/0/{old}", [(base, "not this array")])

    pages = world.lines(logs_path(ARRAY, 0, "limit=40"))

    assert [len(p) for p in pages] == [40] * 6 + [20]
    shown = [line["message"] for page in reversed(pages) for line in page]
    assert shown == [m for _, m in first] + [m for _, m in second]
    newest = pages[0]
    assert [line["message"] for line in newest] == [f"new {i}" for i in range(130, 170)]
    assert newest[-1]["at"].endswith("Z")


def test_an_array_id_with_a_colon_reads_the_stream_the_kit_names(world: World) -> None:
    array_id = "job:render-20260127"
    tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": array_id,
        "spawn:job-array-size": "1",
        "spawn:iam-user": ALICE,
    }
    (instance,) = world.fleet.launch(1, tags)
    world.fleet.lifecycle.handle([world.fleet.event(instance, "running", T0)])
    world.row(array_id, 0, instance)
    world.put(stream_name(array_id, 0, instance), [(world.now_ms, "from the kit")])

    status, body = world.get(logs_path(array_id, 0))

    assert status == 200, body
    assert [line["message"] for line in body["lines"]] == ["from the kit"]


def test_an_agent_stream_is_found_by_instance_id(world: World) -> None:
    instance = world.instances[ARRAY][2]
    world.row(ARRAY, 2, instance)
    world.put(instance, [(world.now_ms - 1000 * i, f"agent {i}") for i in range(5)])

    status, body = world.get(logs_path(ARRAY, 2, "limit=3"))

    assert status == 200, body
    assert [line["message"] for line in body["lines"]] == ["agent 2", "agent 1", "agent 0"]
    assert body["next"] is not None


def test_grep_pages_back_over_hours_of_lines(world: World) -> None:
    instance = world.instances[ARRAY][0]
    world.row(ARRAY, 0, instance)
    # A line every 30 s over 5 hours; every 7th has the phrase.
    events = [
        (world.now_ms - 30_000 * i, f"step {i} {'CUDA out of memory' if i % 7 == 0 else 'ok'}")
        for i in range(600)
    ]
    world.put(f"{ARRAY}/0/{instance}", events)
    since = datetime.fromtimestamp((world.now_ms - 6 * 3_600_000) / 1000, UTC)
    query = f"limit=25&grep={quote('CUDA out')}&since={since.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    pages = world.lines(logs_path(ARRAY, 0, query))

    shown = [line["message"] for page in reversed(pages) for line in page]
    wanted = [m for _, m in sorted(events) if "CUDA out of memory" in m]
    assert shown == wanted
    assert len(wanted) == 86


def test_the_since_window_bounds_the_tail(world: World) -> None:
    instance = world.instances[ARRAY][0]
    world.row(ARRAY, 0, instance)
    world.put(
        f"{ARRAY}/0/{instance}",
        [(world.now_ms - 3_600_000 * h, f"{h} hours ago") for h in range(30)],
    )

    default = [m["message"] for p in world.lines(logs_path(ARRAY, 0)) for m in p]
    grepped = [m["message"] for p in world.lines(logs_path(ARRAY, 0, "grep=ago")) for m in p]
    since = datetime.fromtimestamp((world.now_ms - 2 * 3_600_000) / 1000, UTC)
    recent = world.lines(logs_path(ARRAY, 0, f"since={since.isoformat()}".replace("+", "%2B")))

    # A tail looks back 14 days by default; a grep 24 h back from now (a minute past now_ms).
    assert default == [f"{h} hours ago" for h in range(29, -1, -1)]
    assert grepped == [f"{h} hours ago" for h in range(23, -1, -1)]
    assert [m["message"] for p in recent for m in p] == [
        "2 hours ago",
        "1 hours ago",
        "0 hours ago",
    ]


def test_long_lines_are_cut_and_a_page_keeps_its_byte_budget(world: World) -> None:
    instance = world.instances[ARRAY][0]
    world.row(ARRAY, 0, instance)
    world.put(f"{ARRAY}/0/{instance}", [(world.now_ms - i, "x" * 200_000) for i in range(8)])

    status, body = world.get(logs_path(ARRAY, 0, "limit=1000"))

    assert status == 200
    assert all(len(line["message"].encode()) <= LINE_MAX + 3 for line in body["lines"])
    assert len(body["lines"]) == 8


def test_errors_count_matches_an_independent_count(world: World) -> None:
    rng = random.Random(24)
    words = [
        "step done",
        "ERROR disk full",
        "Traceback (most recent call last):",
        "RuntimeError: CUDA out of memory",
        "ValueError",
        "error lowercase",
        "an Exception occurred",
        "warning",
        "ERRORS=3",
    ]
    generated: dict[str, list[tuple[int, str]]] = {}
    instances = world.instances[ARRAY]
    for index in range(4):
        for instance in {instances[index], instances[(index + 1) % 4]}:
            stream = f"{ARRAY}/{index}/{instance}"
            generated[stream] = [
                (world.now_ms - rng.randrange(0, 20 * 3_600_000), rng.choice(words))
                for _ in range(rng.randrange(50, 400))
            ]
            world.put(stream, generated[stream])
        world.row(ARRAY, index, instances[index])
    # Another array whose id starts like this one's, and an error too old to count.
    world.put(f"{ARRAY}9/0/{instances[0]}", [(world.now_ms, "ERROR elsewhere")] * 3)
    world.put(f"{ARRAY}/3/{instances[3]}", [(world.now_ms - 30 * 3_600_000, "ERROR old")])

    status, body = world.get(f"/arrays/{ARRAY}/errors")

    # Independently: lines containing any of the four words, newest per stream, by hand.
    pattern = re.compile(r"ERROR|Error|Traceback|Exception")
    expected = {}
    for stream, events in generated.items():
        hits = [(t, m) for t, m in sorted(events, key=lambda e: e[0]) if pattern.search(m)]
        if hits:
            _, index, instance = stream.split("/")
            expected[(int(index), instance)] = (len(hits), hits[-1][1])
    assert status == 200, body
    got = {
        (e["task_index"], e["instance_id"]): (e["count"], e["last_message"]) for e in body["errors"]
    }
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in expected.items()}
    for key, (_, last) in got.items():
        # Ties in time: the last message is one of the newest lines.
        newest_at = max(t for t, m in generated[f"{ARRAY}/{key[0]}/{key[1]}"] if pattern.search(m))
        candidates = {
            m
            for t, m in generated[f"{ARRAY}/{key[0]}/{key[1]}"]
            if t == newest_at and pattern.search(m)
        }
        assert last in candidates
    counts = [e["count"] for e in body["errors"]]
    assert counts == sorted(counts, reverse=True)
    assert body["scanned"]["complete"] is True
    assert body["workers_with_errors"] == len(expected)


def test_another_users_worker_logs_are_404(world: World) -> None:
    bobs = world.instances[BOBS][0]
    world.row(BOBS, 0, bobs)
    world.put(f"{BOBS}/0/{bobs}", [(world.now_ms, "ERROR bob's secret")])

    assert world.get(logs_path(BOBS, 0), ALICE)[0] == 404
    assert world.get(f"/arrays/{BOBS}/errors", ALICE)[0] == 404
    status, body = world.get(logs_path(BOBS, 0), BOB)
    assert status == 200
    assert body["lines"][0]["message"] == "ERROR bob's secret"
    assert world.get(f"/arrays/{BOBS}/errors", READER)[1]["errors"][0]["count"] == 1


def test_unknown_arrays_and_workers_are_404(world: World) -> None:
    assert world.get(logs_path("nope-20260127-000000", 0), READER)[0] == 404
    assert world.get("/arrays/nope-20260127-000000/errors", READER)[0] == 404
    status, body = world.get(logs_path(ARRAY, 3))
    assert status == 404
    assert "worker 3" in body["Message"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "grep=%22quoted%22",
        "grep=",
        "grep=%20%20",
        "grep=tab%09",
        "grep=back%5Cslash",
        f"grep={'a' * 129}",
        "since=yesterday",
        "since=2020-01-01T00:00:00Z",
        "cursor=forged",
    ],
)
def test_bad_parameters_are_400(world: World, query: str) -> None:
    world.row(ARRAY, 0, world.instances[ARRAY][0])
    status, body = world.get(logs_path(ARRAY, 0, query))
    assert status == 400, body


def test_bad_task_indexes_and_errors_limits_are_400(world: World) -> None:
    assert world.get(f"/arrays/{ARRAY}/workers/-1/logs")[0] == 400
    assert world.get(f"/arrays/{ARRAY}/workers/1e3/logs")[0] == 400
    assert world.get(f"/arrays/{ARRAY}/errors?limit=101")[0] == 400


def test_a_cursor_of_another_worker_is_400(world: World) -> None:
    for index in (0, 1):
        instance = world.instances[ARRAY][index]
        world.row(ARRAY, index, instance)
        world.put(f"{ARRAY}/{index}/{instance}", [(world.now_ms - i, f"l{i}") for i in range(5)])
    _, body = world.get(logs_path(ARRAY, 0, "limit=2"))
    status, _ = world.get(logs_path(ARRAY, 1, f"limit=2&cursor={quote(body['next'])}"))
    assert status == 400
    grep_status, _ = world.get(logs_path(ARRAY, 0, f"limit=2&grep=l&cursor={quote(body['next'])}"))
    assert grep_status == 400


def test_no_log_group_yet_is_an_empty_page(world: World) -> None:
    world.fleet.clients.logs.delete_log_group(logGroupName=GROUP)
    world.row(ARRAY, 0, world.instances[ARRAY][0])
    assert world.get(logs_path(ARRAY, 0)) == (
        200,
        {"lines": [], "next": None, "status": "failed"},
    )
    status, body = world.get(f"/arrays/{ARRAY}/errors")
    assert status == 200
    assert body["errors"] == []


def test_calls_per_request_are_bounded(world: World) -> None:
    instance = world.instances[ARRAY][0]
    world.row(ARRAY, 0, instance)
    world.put(f"{ARRAY}/0/{instance}", [(world.now_ms - i * 10, f"l{i}") for i in range(3000)])
    calls = count_calls(world.fleet.clients.logs)
    status, body = world.get(logs_path(ARRAY, 0, "limit=1000"))
    assert status == 200
    assert len(body["lines"]) == 1000
    assert calls == {"DescribeLogStreams": 1, "GetLogEvents": 1}


def test_throttling_past_the_retries_is_429(world: World, session: boto3.Session) -> None:
    instance = world.instances[ARRAY][0]
    world.row(ARRAY, 0, instance)
    client = session.client("logs", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    throttle(client, "DescribeLogStreams", lambda: True)
    world.installed.worker_logs = WorkerLogs(client)  # type: ignore[misc]
    status, body = world.get(logs_path(ARRAY, 0))
    assert status == 429, body


def test_workers_show_exit_state_when_recorded(world: World) -> None:
    world.row(ARRAY, 0, world.instances[ARRAY][0], exit_code=137, signal="SIGKILL")
    world.row(ARRAY, 1, world.instances[ARRAY][1])
    world.row(ARRAY, 2, world.instances[ARRAY][2], exit_code="junk")
    status, body = world.get(f"/arrays/{ARRAY}/workers")
    assert status == 200
    by_index = {w["task_index"]: w for w in body["workers"]}
    assert (by_index[0]["exit_code"], by_index[0]["signal"]) == (137, "SIGKILL")
    assert "exit_code" not in by_index[1]
    assert "signal" not in by_index[1]
    assert "exit_code" not in by_index[2]


def test_every_log_route_requires_iam() -> None:
    # A fresh interpreter: Chalice pops a blueprint route's authorizer when it registers it.
    script = (
        "import json\n"
        "from chalice.app import Chalice\n"
        "from chalicelib.api.logs import logs_api\n"
        "app = Chalice(app_name='iam-check')\n"
        "app.register_blueprint(logs_api)\n"
        "print(json.dumps({path: [type(e.authorizer).__name__ for e in methods.values()]"
        " for path, methods in app.routes.items()}))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(result.stdout) == {
        "/arrays/{array_id}/workers/{task_index}/logs": ["IAMAuthorizer"],
        "/arrays/{array_id}/errors": ["IAMAuthorizer"],
    }


def test_a_grep_cut_by_its_call_budget_says_so(world: World) -> None:
    instance = world.instances[ARRAY][0]
    stream = f"{ARRAY}/0/{instance}"
    # One match an hour over 10 hours: the windows (15 min, 1 h, 4 h, ...) need 4 calls.
    world.put(stream, [(world.now_ms - 3_600_000 * h, f"match {h}") for h in range(10)])
    position = Position(world.now_ms, 0, world.now_ms - 12 * 3_600_000)
    logs = WorkerLogs(world.fleet.clients.logs)

    cut = logs.page([stream], position, 5, Budget(2), grep="match")
    whole = logs.page([stream], position, 5, Budget(12), grep="match")

    assert cut.truncated
    assert cut.next is not None
    assert not whole.truncated
    assert [line.message for line in whole.lines] == [f"match {h}" for h in range(4, -1, -1)]


def test_an_errors_scan_past_its_budget_is_incomplete(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = world.instances[ARRAY][0]
    world.put(f"{ARRAY}/0/{instance}", [(world.now_ms - i, f"ERROR {i}") for i in range(50)])
    monkeypatch.setattr(reader, "EVENTS_PER_CALL", 10)
    logs = WorkerLogs(world.fleet.clients.logs)

    monkeypatch.setattr(reader, "ERRORS_CALLS_MAX", 2)
    partial = logs.errors(ARRAY, world.now_ms - 60_000, world.now_ms, 10)
    monkeypatch.setattr(reader, "ERRORS_CALLS_MAX", 20)
    whole = logs.errors(ARRAY, world.now_ms - 60_000, world.now_ms, 10)

    assert (partial.complete, partial.calls, partial.workers[0].count) == (False, 2, 20)
    assert (whole.complete, whole.workers[0].count) == (True, 50)
    assert whole.workers[0].last_message == "ERROR 0"


def test_a_task_retried_on_many_instances_reads_its_ten_newest_streams(world: World) -> None:
    world.row(ARRAY, 0, "i-retry11")
    for n in range(12):
        # One line per instance, an hour apart: i-retry00 is the oldest.
        world.put(f"{ARRAY}/0/i-retry{n:02d}", [(world.now_ms - (12 - n) * 3_600_000, f"run {n}")])
    calls = count_calls(world.fleet.clients.logs)

    status, body = world.get(logs_path(ARRAY, 0))

    assert status == 200, body
    assert [line["message"] for line in body["lines"]] == [f"run {n}" for n in range(2, 12)]
    assert "truncated" not in body
    assert calls == {"DescribeLogStreams": 1, "GetLogEvents": 10}
