"""Workers whose instance ended without a final report, and arrays whose instances are
all gone (SPEC §7 `lost`), on moto: EC2, the lifecycle, the progress table and stream."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.progress.aggregator import TickReport
from chalicelib.progress.summary import progress_view
from local.provision import Provisioned
from testkit.faults import count_calls
from testkit.streams import T0
from tests.conftest import load_event
from tests.integration.conftest import Fleet
from tests.integration.test_progress_store import Harness, event

A = "render-20260127-a1b2c3"


class Array:
    """An array launched on moto EC2 with spawn's tags, its lifecycle and its workers."""

    def __init__(self, fleet: Fleet, harness: Harness, size: int) -> None:
        self.fleet = fleet
        self.harness = harness
        self.instances = []
        for index in range(size):
            tags = {
                "spawn:managed": "true",
                "spawn:job-array-id": A,
                "spawn:job-array-name": "render",
                "spawn:job-array-size": str(size),
                "spawn:job-array-index": str(index),
            }
            [instance] = fleet.launch(tags=tags)
            self.instances.append(instance)
        harness.sizes[A] = ("render", size)
        fleet.lifecycle.workers = harness.aggregator.rows
        fleet.lifecycle.handle([fleet.event(i, "running", T0) for i in self.instances])

    def report(self, index: int, status: str = "running", seconds: int = 0) -> dict[str, Any]:
        """The worker on instance `index` writes its row (SPEC §4)."""
        at = T0 + timedelta(seconds=seconds)
        return self.harness.workers.write(
            A,
            index,
            status,
            1 if status != "running" else 0,
            at=at,
            instance_id=self.instances[index],
        )

    def end(self, index: int, seconds: int, event_delivered: bool = True) -> None:
        """EC2 terminates the instance; its state-change event may be lost."""
        instance = self.instances[index]
        self.fleet.ec2.terminate_instances(InstanceIds=[instance])
        if event_delivered:
            ended = self.fleet.event(instance, "terminated", T0 + timedelta(seconds=seconds))
            assert self.fleet.lifecycle.handle([ended]).failed == []

    def stream_of_write_by_others(self, index: int, seconds: int) -> dict[str, Any]:
        return self.harness.workers.observe(A, index, T0 + timedelta(seconds=seconds))


@pytest.fixture
def array3(fleet: Fleet, session: boto3.Session, infra: Provisioned) -> Array:
    harness = Harness(session, infra)
    return Array(fleet, harness, 3)


@pytest.fixture
def harness(session: boto3.Session, infra: Provisioned) -> Harness:
    return Harness(session, infra)


def _alerts(harness: Harness) -> list[dict[str, Any]]:
    sqs = harness.session.client("sqs")
    url = sqs.get_queue_url(QueueName="seen")["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in found]


def _subscribe(harness: Harness) -> None:
    sqs = harness.session.client("sqs")
    url = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    for topic in ("AlertsTopic", "CriticalTopic"):
        harness.session.client("sns").subscribe(
            TopicArn=harness.infra.arns[topic], Protocol="sqs", Endpoint=arn["QueueArn"]
        )


def test_workers_whose_instance_ended_count_as_lost_and_interrupted_ones_are_named(
    array3: Array, fleet: Fleet
) -> None:
    # G: spot reclaims instance 1 (after its warning) and instance 2 ends; neither worker
    # wrote a final status, so their rows still say running.
    h = array3.harness
    _subscribe(h)
    h.aggregator.handle_stream(event([array3.report(i) for i in range(3)]))
    publisher = AlertPublisher(
        fleet.clients.sns, h.infra.arns["AlertsTopic"], h.infra.arns["CriticalTopic"]
    )
    interruptions = Interruptions(
        fleet.settings, fleet.clients.dynamodb, fleet.ec2, fleet.registry, publisher
    )
    warning = load_event("ec2-spot-interruption-warning.json")
    warning["detail"] = {"instance-id": array3.instances[1], "instance-action": "terminate"}
    warning["time"] = (T0 + timedelta(seconds=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert interruptions.on_warning(warning) == "counted"
    array3.end(1, seconds=220)
    array3.end(2, seconds=230)
    marked = [array3.stream_of_write_by_others(i, 235) for i in (1, 2)]
    assert h.aggregator.handle_stream(event(marked))["batchItemFailures"] == []

    view = progress_view(h.summary(A), h.sizes[A], T0 + timedelta(seconds=240), 600)
    assert view["workers"] == {
        "total": 3,
        "pending": 0,
        "running": 1,
        "completed": 0,
        "failed": 0,
        "lost": 2,
        "stalled": 0,
        "invalid": 0,
    }
    assert view["lost_workers"] == {"spot_interruption": 1, "instance_ended": 1}
    assert view["percent_complete"] == 66.7
    # Stored in the summary item and read back, the recent rows still show who is lost.
    assert sorted(r["status"] for r in view["recent"]) == ["lost", "lost", "running"]
    rows = h.aggregator.rows.workers(A, "lost", 10, None, T0, 600)[0]
    assert [(r["task_index"], r["lost_cause"]) for r in rows] == [
        (1, "spot_interruption"),
        (2, "instance_ended"),
    ]

    # The last worker finishes: the array is over, with its losses.
    h.aggregator.handle_stream(event([array3.report(0, "completed", seconds=250)]))
    h.aggregator.tick(T0 + timedelta(seconds=260))
    finished = [a for a in _alerts(h) if a["event_type"] == "array_finished"]
    assert [a["summary"] for a in finished] == [
        "Array render finished: 1 completed, 0 failed, 2 lost of 3"
    ]
    assert finished[0]["severity"] == "warning"


def test_an_array_whose_instances_are_all_gone_is_over(array3: Array) -> None:
    # G: worker 0 completed; worker 1's instance ended with the event lost, its row still
    # running; worker 2 never reported. No instance of the array is left in EC2.
    h = array3.harness
    _subscribe(h)
    h.aggregator.ec2 = array3.fleet.ec2
    h.aggregator.registry = array3.fleet.registry
    h.aggregator.handle_stream(event([array3.report(0, "completed"), array3.report(1)]))
    array3.end(0, seconds=30)
    array3.end(1, seconds=40, event_delivered=False)
    array3.end(2, seconds=50, event_delivered=False)

    later = T0 + timedelta(seconds=700)  # worker 1 is stalled by now
    h.now = later
    h.aggregator.tick(later)
    swept = array3.stream_of_write_by_others(1, 701)
    assert h.aggregator.handle_stream(event([swept]))["batchItemFailures"] == []
    h.aggregator.tick(later + timedelta(seconds=60))

    view = progress_view(h.summary(A), h.sizes[A], later, 600)
    assert view["workers"]["lost"] == 1
    assert view["workers"]["pending"] == 1
    assert view["instances_gone"] is True
    finished = [a for a in _alerts(h) if a["event_type"] == "array_finished"]
    assert len(finished) == 1
    assert finished[0]["details"]["workers"]["lost"] == 1


def test_the_tick_reads_only_arrays_still_active(harness: Harness) -> None:
    # G: the tick's work is bounded by active arrays, not by every array ever seen.
    w = harness.workers
    done = [f"old-{n:03d}" for n in range(30)]
    harness.aggregator.handle_stream(event([w.write(a, 0, "completed", 1) for a in done]))
    harness.aggregator.handle_stream(event([w.write(a, 0) for a in ("live-1", "live-2")]))

    def tick(at: datetime) -> TickReport:
        harness.now = at
        return harness.aggregator.tick(at)

    tick(T0 + timedelta(seconds=61))  # every array: final figures, or recounted
    retired = T0 + timedelta(hours=2)
    tick(retired)  # finished an hour ago and more: out of the tick
    report = tick(retired + timedelta(seconds=60))
    assert report.arrays == 2
    assert report.items_read == 4  # two index entries, two summaries
    # A late row of a finished array brings it back.
    harness.aggregator.handle_stream(event([w.write(done[0], 1, at=retired)]))
    assert tick(retired + timedelta(seconds=120)).arrays == 3


def test_the_reconciler_marks_lost_the_worker_of_an_instance_it_finds_ended(
    array3: Array,
) -> None:
    # Instance 2's terminated event was lost; the reconciler finds it gone from EC2.
    from chalicelib.fleet.reconcile import reconcile

    h = array3.harness
    h.aggregator.handle_stream(event([array3.report(i) for i in range(3)]))
    array3.end(2, seconds=100, event_delivered=False)
    fleet = array3.fleet
    reconcile(
        settings=fleet.settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=T0 + timedelta(seconds=900),
        workers=h.aggregator.rows,
    )
    h.aggregator.handle_stream(event([array3.stream_of_write_by_others(2, 900)]))
    assert (h.summary(A).counts.running, h.summary(A).counts.lost) == (2, 1)


def test_workers_with_and_without_an_index_tag_are_both_lost_on_their_terminated_event(
    fleet: Fleet, harness: Harness
) -> None:
    # G: one worker on a fully tagged instance, one on a managed instance without
    # `spawn:job-array-index` (started by hand), one on an instance with no spawn tags
    # at all (the kit's identity from the environment). None wrote a final status.
    tagged_tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": A,
        "spawn:job-array-size": "3",
        "spawn:job-array-index": "0",
    }
    [tagged] = fleet.launch(tags=tagged_tags)
    [by_hand] = fleet.launch(tags={"spawn:managed": "true", "spawn:job-array-id": A})
    [bare] = fleet.launch(tags={"Name": "a workstation"})
    instances = [tagged, by_hand, bare]
    harness.sizes[A] = ("render", 3)
    rows = harness.aggregator.rows
    fleet.lifecycle.workers = rows
    fleet.lifecycle.handle([fleet.event(i, "running", T0) for i in instances])
    written = [
        harness.workers.write(A, n, "running", 0, at=T0, instance_id=i)
        for n, i in enumerate(instances)
    ]
    # A row of another array on a fourth instance is left alone.
    [other] = fleet.launch(tags={"Name": "elsewhere"})
    harness.workers.write("other-20260127-d4d4d4", 0, "running", 0, at=T0, instance_id=other)
    harness.aggregator.handle_stream(event(written))

    fleet.ec2.terminate_instances(InstanceIds=instances)
    calls = count_calls(fleet.clients.dynamodb, rows.dynamodb)
    ended = [fleet.event(i, "terminated", T0 + timedelta(seconds=30)) for i in instances]
    assert fleet.lifecycle.handle(ended).failed == []
    made = dict(calls)

    lost = rows.workers(A, "lost", 10, None, T0, 600)[0]
    assert [(r["task_index"], r["instance_id"]) for r in lost] == list(enumerate(instances))
    assert made.get("Query") == 2  # the two rows without an index tag, one each
    assert "Scan" not in made
    other_rows = rows.workers("other-20260127-d4d4d4", None, 10, None, T0, 600)[0]
    assert [r["status"] for r in other_rows] == ["running"]

    # A retried delivery of the same events marks nothing twice and fails nothing.
    assert fleet.lifecycle.handle(ended).failed == []
    assert len(rows.workers(A, "lost", 10, None, T0, 600)[0]) == 3


def test_a_worker_that_reported_its_end_is_not_marked_lost_by_its_instance_id(
    fleet: Fleet, harness: Harness
) -> None:
    [bare] = fleet.launch(tags={"Name": "a workstation"})
    rows = harness.aggregator.rows
    fleet.lifecycle.workers = rows
    fleet.lifecycle.handle([fleet.event(bare, "running", T0)])
    harness.workers.write(A, 4, "completed", 1, at=T0, instance_id=bare)
    fleet.ec2.terminate_instances(InstanceIds=[bare])
    fleet.lifecycle.handle([fleet.event(bare, "terminated", T0 + timedelta(seconds=30))])
    [row] = rows.workers(A, None, 10, None, T0, 600)[0]
    assert row["status"] == "completed"


def test_without_the_index_an_untagged_worker_is_left_to_the_tick_and_nothing_fails(
    fleet: Fleet, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # G: a table deployed before the index (or while it backfills).
    rows = harness.aggregator.rows
    rows.dynamodb.update_table(
        TableName=rows.table,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "workers-by-instance"}}],
    )
    [bare] = fleet.launch(tags={"Name": "a workstation"})
    fleet.lifecycle.workers = rows
    fleet.lifecycle.handle([fleet.event(bare, "running", T0)])
    harness.workers.write(A, 0, "running", 0, at=T0, instance_id=bare)
    fleet.ec2.terminate_instances(InstanceIds=[bare])
    ended = fleet.lifecycle.handle([fleet.event(bare, "terminated", T0 + timedelta(seconds=30))])
    assert ended.failed == []
    assert "index by instance unavailable" in caplog.text
    [row] = rows.workers(A, None, 10, None, T0, 600)[0]
    assert row["status"] == "running"
