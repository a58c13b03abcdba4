"""Capacity history by instance type and zone, on moto (SPEC §15 `GET /capacity`).

The must-show test generates a history of runs, stops, terminations and spot
interruptions, delivers it with duplicates, interleaving and late ends (after a fleet
tick counted past them), and compares `/capacity` with a count made here from the
generated history alone (no product code).
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from chalice.app import Chalice
from chalice.test import Client

from chalicelib import container as container_module
from chalicelib.api.capacity import capacity_api
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.fleet.lifecycle import Message
from local.provision import Provisioned
from tests.conftest import load_event
from tests.contract import check_response
from tests.integration.conftest import AMI, fast_pacer

NOW = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
ARRAY = "render-20260127-a1b2c3"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def time(self) -> float:
        return self.at.timestamp()


@dataclass
class World:
    """moto, the handlers' wiring on a settable clock, and the /capacity route."""

    session: boto3.Session
    settings: Settings
    clock: Clock
    wiring: Container
    app: Chalice

    def launch(self, instance_type: str, zone: str) -> str:
        tags = {"spawn:managed": "true", "spawn:job-array-id": ARRAY}
        reservation = self.wiring.clients.ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
        return str(reservation["Instances"][0]["InstanceId"])

    def change(self, instance_id: str, state: str, at: datetime) -> None:
        event = copy.deepcopy(load_event("ec2-state-change-running.json"))
        event["id"] = f"evt-{instance_id}-{state}-{at.timestamp()}"
        event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"] = {"instance-id": instance_id, "state": state}
        outcome = self.wiring.lifecycle.handle([Message(event["id"], json.dumps(event))])
        assert outcome.failed == []

    def warn(self, instance_id: str, at: datetime) -> None:
        event = copy.deepcopy(load_event("ec2-spot-interruption-warning.json"))
        event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"] = {"instance-id": instance_id, "instance-action": "terminate"}
        self.wiring.interruptions.on_warning(event)

    def capacity(self, query: str = "") -> tuple[int, Any]:
        """The route's answer, checked against its OpenAPI description."""
        with Client(self.app) as client:
            response = client.http.get(f"/capacity{query}")
        body = json.loads(response.body)
        check_response(f"/capacity{query}", response.status_code, body)
        return response.status_code, body


@pytest.fixture
def world(session: boto3.Session, infra: Provisioned, monkeypatch: pytest.MonkeyPatch) -> World:
    settings = Settings(api_isolation="off")
    clock = Clock(NOW)
    wiring = Container(settings, Clients(session), clock=clock.time, pacer=fast_pacer)
    monkeypatch.setattr(container_module, "_installed", wiring)
    app = Chalice(app_name="test-capacity")
    app.register_blueprint(capacity_api)
    return World(session, settings, clock, wiring, app)


def by_pair(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["instance_type"], e["availability_zone"]): e for e in body["capacity"]}


def test_a_run_counts_once_however_its_end_is_delivered(world: World) -> None:
    instance = world.launch("c5.xlarge", "us-east-1a")
    start = NOW - timedelta(hours=5)
    world.change(instance, "running", start)
    world.change(instance, "running", start)  # a duplicate
    world.change(instance, "stopping", start + timedelta(hours=2))
    world.change(instance, "stopping", start + timedelta(hours=2))
    world.change(instance, "stopped", start + timedelta(hours=2, minutes=1))
    world.change(instance, "running", start - timedelta(hours=1))  # late, stale

    status, body = world.capacity()
    assert status == 200
    [only] = body["capacity"]
    assert only == {
        "instance_type": "c5.xlarge",
        "availability_zone": "us-east-1a",
        "instance_hours": 2.0,
        "interruptions": 0,
        "interruptions_per_100h": 0.0,
        "launch_failures": {},
    }


def test_a_tick_counts_live_runs_and_a_late_stop_takes_back_the_excess(world: World) -> None:
    instance = world.launch("m5.large", "us-east-1b")
    world.change(instance, "running", NOW - timedelta(hours=3))
    world.wiring.fleet_health.tick()  # counts the 3 h to now: the stop is not known yet
    assert by_pair(world.capacity()[1])["m5.large", "us-east-1b"]["instance_hours"] == 3.0
    world.wiring.fleet_health.tick()  # nothing new to count within the hour
    assert by_pair(world.capacity()[1])["m5.large", "us-east-1b"]["instance_hours"] == 3.0

    world.change(instance, "shutting-down", NOW - timedelta(hours=1))
    world.change(instance, "terminated", NOW - timedelta(minutes=59))
    world.wiring.fleet_health.tick()
    assert by_pair(world.capacity()[1])["m5.large", "us-east-1b"]["instance_hours"] == 2.0


def test_a_run_across_midnight_is_split_by_utc_day(world: World) -> None:
    instance = world.launch("c5.xlarge", "us-east-1c")
    midnight = datetime(2026, 1, 26, tzinfo=UTC)
    world.change(instance, "running", midnight - timedelta(hours=1))
    world.change(instance, "stopping", midnight + timedelta(hours=3))
    dynamodb = world.wiring.clients.dynamodb
    seconds = {}
    for day in ("2026-01-25", "2026-01-26"):
        item = dynamodb.get_item(
            TableName=world.settings.stats_table,
            Key={"key": {"S": f"capacity#{day}#c5.xlarge#us-east-1c"}},
        )["Item"]
        seconds[day] = int(item["instance_seconds"]["N"])
        assert int(item["expires_at"]["N"]) > NOW.timestamp()
        pairs = dynamodb.get_item(
            TableName=world.settings.stats_table, Key={"key": {"S": f"capacity-pairs#{day}"}}
        )["Item"]["pairs"]["SS"]
        assert pairs == ["c5.xlarge#us-east-1c"]
    assert seconds == {"2026-01-25": 3600, "2026-01-26": 3 * 3600}


def test_an_interruption_counts_once_in_its_type_and_zone(world: World) -> None:
    instance = world.launch("c5.xlarge", "us-east-1a")
    world.change(instance, "running", NOW - timedelta(hours=4))
    warned = NOW - timedelta(hours=2, minutes=2)
    world.warn(instance, warned)
    world.warn(instance, warned)  # redelivered
    world.change(instance, "shutting-down", NOW - timedelta(hours=2))
    world.wiring.fleet_health.tick()  # finds nothing left to count
    entry = by_pair(world.capacity()[1])["c5.xlarge", "us-east-1a"]
    assert entry["interruptions"] == 1
    assert entry["instance_hours"] == 2.0
    assert entry["interruptions_per_100h"] == 50.0


def test_launch_failure_counts_in_the_shared_items_are_read_by_code(world: World) -> None:
    # The launch-failure writer ADDs `lf_{code}` to the same day item and the pair list.
    dynamodb = world.wiring.clients.dynamodb
    day = f"{NOW:%Y-%m-%d}"
    dynamodb.update_item(
        TableName=world.settings.stats_table,
        Key={"key": {"S": f"capacity#{day}#c5.xlarge#us-east-1d"}},
        UpdateExpression="ADD lf_InsufficientInstanceCapacity :n",
        ExpressionAttributeValues={":n": {"N": "5"}},
    )
    dynamodb.update_item(
        TableName=world.settings.stats_table,
        Key={"key": {"S": f"capacity-pairs#{day}"}},
        UpdateExpression="ADD pairs :p",
        ExpressionAttributeValues={":p": {"SS": ["c5.xlarge#us-east-1d"]}},
    )
    entry = by_pair(world.capacity()[1])["c5.xlarge", "us-east-1d"]
    assert entry["launch_failures"] == {"InsufficientInstanceCapacity": 5}
    assert entry["instance_hours"] == 0.0
    assert entry["interruptions_per_100h"] is None


def test_filters_and_bad_parameters(world: World) -> None:
    for instance_type, zone in (("c5.xlarge", "us-east-1a"), ("m5.large", "us-east-1b")):
        instance = world.launch(instance_type, zone)
        world.change(instance, "running", NOW - timedelta(hours=2))
        world.change(instance, "stopping", NOW - timedelta(hours=1))
    assert set(by_pair(world.capacity("?instance_type=m5.large")[1])) == {
        ("m5.large", "us-east-1b")
    }
    assert len(world.capacity("?region=us-east-1")[1]["capacity"]) == 2
    assert world.capacity("?region=eu-west-1")[1] == {"capacity": []}
    for bad in ("?instance_type=C5", "?instance_type=x" * 3, "?region=us_east_1", "?region=1"):
        status, body = world.capacity(bad)
        assert status == 400, bad
        assert body["Code"] == "BadRequestError"


def test_only_fleet_wide_readers_may_read_it(world: World) -> None:
    world.wiring.settings = replace(world.settings, api_isolation="iam")
    status, _ = world.capacity()  # the test client sends no IAM identity
    assert status == 403


def test_old_days_fall_out_of_the_seven_day_window(world: World) -> None:
    instance = world.launch("c5.xlarge", "us-east-1a")
    world.change(instance, "running", NOW - timedelta(days=7, hours=1))
    world.change(instance, "stopping", NOW - timedelta(days=6, hours=23))
    # 10:00 on the 27th: the window is the 21st to the 27th; the run was on the 20th.
    assert world.capacity()[1] == {"capacity": []}


# --- the must-show: /capacity against an independent count ---------------------------

TYPES = ("c5.xlarge", "m5.large")
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass(frozen=True)
class Run:
    instance: int
    instance_type: str
    zone: str
    start: datetime
    end: datetime | None  # None: still running at NOW
    interrupted: bool
    ending: tuple[str, str]  # the states its end is reported with


def generated_history(seed: int, instances: int) -> list[Run]:
    """Runs over the last 5 days: stopped and started again, terminated, interrupted,
    and a third of the instances still running at NOW."""
    rng = random.Random(seed)
    runs: list[Run] = []
    for number in range(instances):
        instance_type, zone = rng.choice(TYPES), rng.choice(ZONES)
        at = NOW - timedelta(days=5) + timedelta(minutes=rng.randrange(0, 24 * 60))
        count = rng.randint(1, 3)
        for run in range(count):
            if number % 3 == 0 and run == count - 1:
                runs.append(Run(number, instance_type, zone, at, None, False, ("", "")))
                break
            length = timedelta(minutes=rng.randrange(20, 30 * 60))
            end = min(at + length, NOW - timedelta(minutes=30))
            last = run == count - 1
            ending = ("shutting-down", "terminated") if last else ("stopping", "stopped")
            runs.append(Run(number, instance_type, zone, at, end, rng.random() < 0.4, ending))
            at = end + timedelta(minutes=rng.randrange(10, 120))
            if at > NOW - timedelta(hours=3):
                break
    return runs


def independent_count(runs: list[Run]) -> dict[tuple[str, str], tuple[float, int]]:
    """Instance-hours and interruptions per (type, zone), from the history alone."""
    seconds: dict[tuple[str, str], float] = {}
    interruptions: dict[tuple[str, str], int] = {}
    for run in runs:
        pair = (run.instance_type, run.zone)
        end = run.end or NOW
        seconds[pair] = seconds.get(pair, 0.0) + (end - run.start).total_seconds()
        interruptions[pair] = interruptions.get(pair, 0) + run.interrupted
    return {pair: (seconds[pair] / 3600, interruptions[pair]) for pair in seconds}


def test_capacity_matches_an_independent_count_of_the_generated_history(world: World) -> None:
    runs = generated_history(seed=23, instances=14)
    rng = random.Random(7)
    ids = {}
    for run in runs:
        if run.instance not in ids:
            ids[run.instance] = world.launch(run.instance_type, run.zone)
    # Each instance's events in order; instances interleaved; every event sent once
    # more at a random later point (duplicates; late copies of old runs are stale).
    streams: dict[int, list[tuple[str, Any]]] = {}
    for run in runs:
        events = streams.setdefault(run.instance, [])
        events.append(("running", run.start))
        if run.end is not None:
            if run.interrupted:
                events.append(("warn", run.end - timedelta(minutes=2)))
            events.append((run.ending[0], run.end))
            events.append((run.ending[1], run.end + timedelta(seconds=40)))
    queue: list[tuple[int, str, Any]] = []
    pending = {n: list(events) for n, events in streams.items()}
    while pending:
        number = rng.choice(sorted(pending))
        kind, at = pending[number].pop(0)
        if not pending[number]:
            del pending[number]
        queue.append((number, kind, at))
    for item in list(queue):
        queue.insert(rng.randrange(queue.index(item) + 1, len(queue) + 1), item)
    ticks = set(rng.sample(range(len(queue)), 6))
    for position, (number, kind, at) in enumerate(queue):
        if kind == "warn":
            world.warn(ids[number], at)
        else:
            world.change(ids[number], kind, at)
        if position in ticks:  # counts live runs to now, before later ends arrive
            world.wiring.fleet_health.tick()
    world.wiring.fleet_health.tick()

    expected = independent_count(runs)
    assert sum(1 for r in runs if r.interrupted) >= 3
    assert sum(1 for r in runs if r.end is None) >= 2
    found = by_pair(world.capacity()[1])
    assert set(found) == set(expected)
    for pair, (hours, interruptions) in expected.items():
        entry = found[pair]
        assert entry["instance_hours"] == pytest.approx(hours, abs=1e-3), pair
        assert entry["interruptions"] == interruptions, pair
        rate = 100 * interruptions / hours
        assert entry["interruptions_per_100h"] == pytest.approx(rate, abs=1e-3), pair


def test_a_failed_capacity_write_never_fails_the_batch_and_the_tick_counts_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = world.launch("c5.xlarge", "us-east-1a")
    world.change(instance, "running", NOW - timedelta(hours=2))
    ledger = world.wiring.capacity

    def unavailable(entries: list[dict[str, Any]]) -> bool:
        raise RuntimeError("DynamoDB unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(ledger, "_transact", unavailable)
        world.change(instance, "terminated", NOW - timedelta(hours=1))  # asserts no failure
        world.wiring.fleet_health.tick()  # logged, and the snapshot still written
    assert world.capacity()[1] == {"capacity": []}
    assert world.wiring.registry.get(instance)["state"] == "terminated"  # type: ignore[index]

    world.wiring.fleet_health.tick()
    assert by_pair(world.capacity()[1])["c5.xlarge", "us-east-1a"]["instance_hours"] == 1.0
