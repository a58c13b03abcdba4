"""The fleet simulator against moto: what it launches, emits and writes must match AWS.

The local stack is only as honest as its simulated fleet: if the instances, events or
progress rows it produces differ from what EC2, EventBridge and spawn's workers produce,
the monitor would be tested against a world that does not exist.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.simulator import ArrayPlan, FleetSimulator

REGION = "us-east-1"
TABLE = "spawn-progress"
START = datetime(2026, 1, 27, 10, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=2)
EVENT_KEYS = {"version", "id", "detail-type", "source", "time", "region", "resources", "detail"}
ROW_REQUIRED = {
    "array_id": "S",
    "task_index": "N",
    "status": "S",
    "tasks_completed": "N",
    "last_update": "S",
    "instance_id": "S",
    "hostname": "S",
}
ROW_OPTIONAL = {"tasks_total": "N", "error_count": "N", "message": "S"}
STATE_CHANGE = "EC2 Instance State-change Notification"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = STEP) -> None:
        self.now += delta


@dataclass
class Aws:
    ec2: Any
    events: Any
    dynamodb: Any
    sqs: Any
    queue_url: str
    sts: Any


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        # Clients only after the mock has started.
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "array_id", "KeyType": "HASH"},
                {"AttributeName": "task_index", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "array_id", "AttributeType": "S"},
                {"AttributeName": "task_index", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="ec2-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="ec2-events", EventPattern=json.dumps({"source": ["aws.ec2"]}))
        events.put_targets(Rule="ec2-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
        yield Aws(
            ec2=boto3.client("ec2", region_name=REGION),
            events=events,
            dynamodb=dynamodb,
            sqs=sqs,
            queue_url=queue_url,
            sts=boto3.client("sts", region_name=REGION),
        )


def make_sim(
    aws: Aws,
    arrays: list[ArrayPlan],
    clock: FakeClock,
    *,
    seed: int = 1234,
    interruption_probability: float = 0.0,
    lost_share: float = 0.0,
    log: list[str] | None = None,
    table: str = TABLE,
    launch_failures: bool = False,
) -> FleetSimulator:
    lines = log if log is not None else []
    return FleetSimulator(
        ec2=aws.ec2,
        events=aws.events,
        dynamodb=aws.dynamodb,
        sts=aws.sts,
        progress_table=table,
        arrays=arrays,
        rng=random.Random(seed),
        clock=clock,
        interruption_probability=interruption_probability,
        lost_share=lost_share,
        log=lines.append,
        launch_failures=launch_failures,
    )


def steps(sim: FleetSimulator, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        sim.step()
        clock.advance()


def drain(aws: Aws) -> list[dict[str, Any]]:
    """Every event the rule delivered so far, in delivery order."""
    out: list[dict[str, Any]] = []
    while True:
        messages = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])


def instances(aws: Aws) -> list[dict[str, Any]]:
    pages = aws.ec2.get_paginator("describe_instances").paginate()
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def rows(aws: Aws) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=TABLE)["Items"]


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_ec2_event(event: dict[str, Any], detail_type: str, instance_id: str) -> None:
    """The envelope EC2 events have on the default bus (EC2 user guide examples)."""
    # moto's default SQS target input template drops `account`; AWS always sends it.
    assert EVENT_KEYS <= set(event) <= EVENT_KEYS | {"account"}
    assert event.get("account", "123456789012") == "123456789012"
    assert event["version"] == "0"
    assert re.fullmatch(r"[0-9a-f-]{36}", event["id"])
    assert event["detail-type"] == detail_type
    assert event["source"] == "aws.ec2"
    assert event["region"] == REGION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event["resources"] == [f"arn:aws:ec2:{REGION}:123456789012:instance/{instance_id}"]
    assert event["detail"]["instance-id"] == instance_id


RENDER = ArrayPlan(name="render", size=4, instance_type="c5.xlarge", spot=True, task_seconds=6.0)
TRAIN = ArrayPlan(
    name="train",
    size=3,
    instance_type="m5.large",
    spot=False,
    task_seconds=6.0,
    cost_limit_usd=0.25,
)


def test_launch_tags_every_member_with_spawn_tags_and_its_own_index(aws: Aws) -> None:
    clock = FakeClock(START)
    sim = make_sim(aws, [RENDER, TRAIN], clock)

    sim.step()

    launched = instances(aws)
    assert len(launched) == RENDER.size + TRAIN.size
    launcher = aws.sts.get_caller_identity()["Arn"]
    for plan in (RENDER, TRAIN):
        members = [i for i in launched if tags_of(i).get("spawn:job-array-name") == plan.name]
        assert len(members) == plan.size
        array_ids = {tags_of(i)["spawn:job-array-id"] for i in members}
        assert len(array_ids) == 1
        (array_id,) = array_ids
        assert re.fullmatch(rf"{plan.name}-20260127-[0-9a-f]{{6}}", array_id)
        indexes = sorted(int(tags_of(i)["spawn:job-array-index"]) for i in members)
        assert indexes == list(range(plan.size))
        for instance in members:
            tags = tags_of(instance)
            assert tags["spawn:managed"] == "true"
            assert tags["spawn:job-array-size"] == str(plan.size)
            # As spawn does: the launching principal, for per-user isolation.
            assert tags["spawn:iam-user"] == launcher
            assert tags["Name"] == f"{plan.name}-{tags['spawn:job-array-index']}"
            assert instance["InstanceType"] == plan.instance_type
            assert instance.get("InstanceLifecycle") == ("spot" if plan.spot else None)
            # spawn's per-instance cap, on the arrays that have one (SPEC §14 budget_usd).
            assert tags.get("spawn:cost-limit") == ("0.25" if plan is TRAIN else None)


def test_state_change_events_reach_the_bus_in_ec2_shape(aws: Aws) -> None:
    clock = FakeClock(START)
    sim = make_sim(aws, [RENDER, TRAIN], clock)

    sim.step()
    launched_at = clock.now
    clock.advance()
    sim.step()

    ids = {i["InstanceId"] for i in instances(aws)}
    events = drain(aws)
    assert len(events) == 2 * len(ids)
    seen: dict[str, list[str]] = {}
    for event in events:
        instance_id = event["detail"]["instance-id"]
        assert_ec2_event(event, STATE_CHANGE, instance_id)
        assert set(event["detail"]) == {"instance-id", "state"}
        expected_time = launched_at if event["detail"]["state"] == "pending" else clock.now
        assert event["time"] == iso(expected_time)
        seen.setdefault(instance_id, []).append(event["detail"]["state"])
    assert seen == {i: ["pending", "running"] for i in ids}


def test_progress_rows_have_the_spec_shape_and_move(aws: Aws) -> None:
    clock = FakeClock(START)
    sim = make_sim(aws, [RENDER, TRAIN], clock)

    steps(sim, clock, 3)

    by_instance = {i["InstanceId"]: tags_of(i) for i in instances(aws)}
    items = rows(aws)
    assert len(items) == RENDER.size + TRAIN.size
    for item in items:
        assert set(ROW_REQUIRED) <= set(item) <= set(ROW_REQUIRED) | set(ROW_OPTIONAL)
        for name, kind in {**ROW_REQUIRED, **ROW_OPTIONAL}.items():
            if name in item:
                assert list(item[name]) == [kind], name
        assert item["status"]["S"] in {"running", "completed", "failed"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["last_update"]["S"])
        assert START <= datetime.fromisoformat(item["last_update"]["S"]) <= clock.now
        assert re.fullmatch(r"ip-\d+-\d+-\d+-\d+", item["hostname"]["S"])
        done = int(item["tasks_completed"]["N"])
        assert 0 <= done <= int(item["tasks_total"]["N"])
        assert int(item["error_count"]["N"]) >= 0
        tags = by_instance[item["instance_id"]["S"]]
        assert tags["spawn:job-array-id"] == item["array_id"]["S"]
        assert tags["spawn:job-array-index"] == item["task_index"]["N"]
    assert any(int(item["tasks_completed"]["N"]) > 0 for item in items)


def test_a_finished_workers_instance_is_terminated(aws: Aws) -> None:
    clock = FakeClock(START)
    sim = make_sim(aws, [TRAIN], clock)

    finished: dict[str, Any] | None = None
    for _ in range(30):
        sim.step()
        clock.advance()
        finished = next((r for r in rows(aws) if r["status"]["S"] == "completed"), None)
        if finished is not None:
            break
    assert finished is not None, "no worker completed within 30 steps"
    assert finished["tasks_completed"] == finished["tasks_total"]
    instance_id = finished["instance_id"]["S"]
    sim.step()

    (instance,) = aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ]
    assert instance["State"]["Name"] == "terminated"
    states = [
        e["detail"]["state"]
        for e in drain(aws)
        if e["detail-type"] == STATE_CHANGE and e["detail"]["instance-id"] == instance_id
    ]
    assert states == ["pending", "running", "shutting-down", "terminated"]


def test_spot_interruption_warns_then_terminates_spot_members_only(aws: Aws) -> None:
    clock = FakeClock(START)
    sim = make_sim(aws, [RENDER, TRAIN], clock, interruption_probability=1.0)

    steps(sim, clock, 4)  # launch, running, warning, termination

    launched = {i["InstanceId"]: i for i in instances(aws)}
    spot_ids = {
        i for i, inst in launched.items() if tags_of(inst)["spawn:job-array-name"] == "render"
    }
    events = drain(aws)
    warnings = [e for e in events if e["detail-type"] == "EC2 Spot Instance Interruption Warning"]
    assert {e["detail"]["instance-id"] for e in warnings} == spot_ids
    for warning in warnings:
        assert_ec2_event(warning, warning["detail-type"], warning["detail"]["instance-id"])
        assert warning["detail"] == {
            "instance-id": warning["detail"]["instance-id"],
            "instance-action": "terminate",
        }
    for rebalance in (
        e for e in events if e["detail-type"] == "EC2 Instance Rebalance Recommendation"
    ):
        assert rebalance["detail"]["instance-id"] in spot_ids
        assert set(rebalance["detail"]) == {"instance-id"}
    for instance_id in spot_ids:
        assert launched[instance_id]["State"]["Name"] == "terminated"
    for item in rows(aws):
        if item["instance_id"]["S"] in spot_ids:
            assert item["status"]["S"] == "failed"
            assert "spot interruption" in item["message"]["S"]
    assert not any(launched[i]["State"]["Name"] == "terminated" for i in set(launched) - spot_ids)


def test_put_events_sends_at_most_ten_entries_per_call(aws: Aws) -> None:
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Entries"]))

    aws.events.meta.events.register("provide-client-params.events.PutEvents", record)
    clock = FakeClock(START)
    big = ArrayPlan(name="sweep", size=23, instance_type="c5.large", spot=False, task_seconds=60.0)
    sim = make_sim(aws, [big], clock)

    sim.step()

    assert sizes == [10, 10, 3]
    assert len(drain(aws)) == 23


def test_a_new_round_starts_once_every_array_has_finished(aws: Aws) -> None:
    clock = FakeClock(START)
    log: list[str] = []
    sim = make_sim(aws, [TRAIN], clock, log=log)

    steps(sim, clock, 40)

    array_ids = {tags_of(i)["spawn:job-array-id"] for i in instances(aws)}
    assert len(array_ids) >= 2
    first_round = [i for i in instances(aws) if i["State"]["Name"] == "terminated"]
    assert len(first_round) >= TRAIN.size
    assert any("round 2" in line for line in log)


def test_run_logs_aws_errors_and_keeps_stepping(aws: Aws) -> None:
    clock = FakeClock(START)
    stop = threading.Event()
    failures: list[str] = []

    def log(line: str) -> None:
        if "step failed" in line:
            failures.append(line)
            if len(failures) >= 2:
                stop.set()

    sim = FleetSimulator(
        ec2=aws.ec2,
        events=aws.events,
        dynamodb=aws.dynamodb,
        sts=aws.sts,
        progress_table="no-such-table",
        arrays=[TRAIN],
        rng=random.Random(1),
        clock=clock,
        interruption_probability=0.0,
        log=log,
    )
    watchdog = threading.Timer(20.0, stop.set)
    watchdog.start()
    try:
        sim.run(stop, 0.0)
    finally:
        watchdog.cancel()

    assert len(failures) >= 2
    assert "ResourceNotFoundException" in failures[0]
    # The running events were still delivered although the progress write failed.
    assert any(e["detail"]["state"] == "running" for e in drain(aws))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size"),
        ({"task_seconds": 0.0}, "task_seconds"),
        ({"name": ""}, "name"),
        ({"cost_limit_usd": 0.0}, "cost_limit_usd"),
    ],
)
def test_array_plan_rejects_nonsense(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "name": "render",
        "size": 2,
        "instance_type": "c5.large",
        "spot": True,
        "task_seconds": 10.0,
    }
    with pytest.raises(ValueError, match=message):
        ArrayPlan(**{**base, **kwargs})


def test_in_fleet_query_mode_contributor_events_come_as_cloudwatch_sends_them(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.alerts.notifications import parse_contributor_event
    from local import simulator

    monkeypatch.setattr(simulator, "CHECK_FAILURE_PROBABILITY", 1.0)
    monkeypatch.setattr(simulator, "CHECK_RECOVERY_PROBABILITY", 1.0)
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.events.put_rule(Name="cw", EventPattern=json.dumps({"source": ["aws.cloudwatch"]}))
    aws.events.put_targets(Rule="cw", Targets=[{"Id": "queue", "Arn": queue_arn}])
    clock = FakeClock(START)
    long_tasks = ArrayPlan(
        name="train", size=3, instance_type="m5.large", spot=False, task_seconds=600.0
    )
    sim = make_sim(aws, [long_tasks], clock)
    sim._alarm_mode = "fleet-query"

    steps(sim, clock, 4)  # launch, running, status check fails, recovers

    changes = [
        parse_contributor_event(e)
        for e in drain(aws)
        if e["detail-type"] == "CloudWatch Alarm Contributor State Change"
    ]
    ids = {i["InstanceId"] for i in instances(aws)}
    assert {c.instance_id for c in changes} == ids
    assert sorted({(c.alarm_name, c.check) for c in changes}) == [
        ("spawn-fleet-status-check", "status")
    ]
    for instance_id in ids:
        states = [c.new_state for c in changes if c.instance_id == instance_id]
        assert states == ["ALARM", "OK"]


INTERRUPTED = re.compile(r"spot interruption for (\S+)\[(\d+)\]")
BIG_SPOT = ArrayPlan(name="render", size=8, instance_type="c5.xlarge", spot=True, task_seconds=6.0)


def _interrupt_all(aws: Aws, lost_share: float, seed: int = 1234) -> tuple[list[str], set[int]]:
    """Run one spot array whose members are all interrupted; the log and the indices of
    the workers the simulator lost."""
    clock = FakeClock(START)
    log: list[str] = []
    sim = make_sim(
        aws,
        [BIG_SPOT],
        clock,
        seed=seed,
        interruption_probability=1.0,
        lost_share=lost_share,
        log=log,
    )
    steps(sim, clock, 5)  # launch, running, warning, shutting-down, terminated
    lost = {int(m[2]) for line in log if "worker lost" in line if (m := INTERRUPTED.search(line))}
    return log, lost


def _statuses(aws: Aws, log: list[str]) -> dict[int, str]:
    [array_id] = {m[1] for line in log if (m := INTERRUPTED.search(line))}
    return {
        int(item["task_index"]["N"]): item["status"]["S"]
        for item in rows(aws)
        if item["array_id"]["S"] == array_id
    }


def test_a_lost_worker_is_terminated_without_a_final_report(aws: Aws) -> None:
    log, lost = _interrupt_all(aws, lost_share=1.0)
    assert lost == set(range(BIG_SPOT.size))
    assert set(_statuses(aws, log).values()) == {"running"}  # the monitor marks these lost
    assert all(i["State"]["Name"] == "terminated" for i in instances(aws))
    states = [e["detail"].get("state") for e in drain(aws) if e["detail-type"] == STATE_CHANGE]
    assert states.count("terminated") == BIG_SPOT.size  # their terminated events still come


def test_some_interrupted_workers_are_lost_the_same_ones_for_the_same_seed(aws: Aws) -> None:
    log, lost = _interrupt_all(aws, lost_share=0.5)
    assert 0 < len(lost) < BIG_SPOT.size
    statuses = _statuses(aws, log)
    assert {i for i, status in statuses.items() if status == "running"} == lost
    assert {i for i, status in statuses.items() if status == "failed"} == set(statuses) - lost
    _, again = _interrupt_all(aws, lost_share=0.5)
    assert again == lost


def test_some_spot_launches_fail_with_cloudtrail_shaped_events(aws: Aws) -> None:
    from chalicelib.fleet.launch_events import parse_launch_failure

    clock = FakeClock(START)
    sim = make_sim(aws, [RENDER, TRAIN], clock, launch_failures=True)
    sim.step()
    events = drain(aws)
    failed = [parse_launch_failure(e) for e in events if e["detail-type"] != STATE_CHANGE]
    launched = instances(aws)
    render = [i for i in launched if tags_of(i)["spawn:job-array-name"] == "render"]
    assert failed
    assert len(render) + len(failed) == RENDER.size
    assert {f.code for f in failed} <= {
        "InsufficientInstanceCapacity",
        "MaxSpotInstanceCountExceeded",
    }
    assert {f.array_id for f in failed} == {tags_of(render[0])["spawn:job-array-id"]}
    assert all(f.instance_type == RENDER.instance_type and f.availability_zone for f in failed)
    assert len({f.event_id for f in failed}) == len(failed)
    train = [i for i in launched if tags_of(i)["spawn:job-array-name"] == "train"]
    assert len(train) == TRAIN.size  # on-demand launches do not fail here
