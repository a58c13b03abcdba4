"""Summaries on moto: the stream handler, recount by Query, and the tick's metrics and alerts.

In-process moto cannot serve DynamoDB Streams (PITFALLS), so the stream records here are
built the way DynamoDB builds them, next to the real write (`testkit.streams.Workers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.alerts.publish import AlertPublisher
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.progress.aggregator import ProgressAggregator
from chalicelib.progress.store import ConflictError, SummaryStore
from chalicelib.progress.summary import Summary
from local.provision import Provisioned
from testkit.faults import count_calls
from testkit.streams import T0, Workers

A = "render-20260127-a1b2c3"
B = "train-20260127-d4e5f6"


def event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


@dataclass
class Harness:
    session: boto3.Session
    infra: Provisioned
    settings: Settings = field(default_factory=Settings)
    sizes: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    now: datetime = T0

    def __post_init__(self) -> None:
        clients = Clients(self.session)
        self.dynamodb = clients.dynamodb
        self.store = SummaryStore(self.dynamodb, self.settings.arrays_table)
        self.workers = Workers(
            self.dynamodb, self.settings.progress_table, self.infra.stream_arns["ProgressTable"]
        )
        self.aggregator = ProgressAggregator(
            self.dynamodb,
            self.store,
            self.settings,
            AlertPublisher(
                clients.sns,
                alerts_topic_arn=self.infra.arns["AlertsTopic"],
                critical_topic_arn=self.infra.arns["CriticalTopic"],
            ),
            self.sizes.get,
            clock=lambda: self.now,
        )

    def summary(self, array_id: str) -> Summary:
        found = self.store.get(array_id)
        assert found is not None
        return found


@pytest.fixture
def harness(session: boto3.Session, infra: Provisioned) -> Harness:
    return Harness(session, infra)


def test_a_batch_builds_summaries_with_one_read_and_one_write_per_array(harness: Harness) -> None:
    w = harness.workers
    records = [w.write(A, i) for i in range(30)] + [w.write(B, i) for i in range(5)]
    records += [w.write(A, 3, "completed", 10), w.write(A, 4, "failed", 2), w.remove(B, 0)]
    calls = count_calls(harness.dynamodb)
    assert harness.aggregator.handle_stream(event(records)) == {"batchItemFailures": []}
    assert calls == {"GetItem": 2, "PutItem": 2}
    a, b = harness.summary(A), harness.summary(B)
    assert (a.counts.running, a.counts.completed, a.counts.failed) == (28, 1, 1)
    assert a.counts.tasks_completed == 12
    assert b.counts.running == 4


def test_a_retried_batch_does_not_double_count(harness: Harness) -> None:
    w = harness.workers
    records = [w.write(A, i) for i in range(10)] + [w.write(A, 2, "completed", 1)]
    harness.aggregator.handle_stream(event(records))
    saved = harness.summary(A)
    calls = count_calls(harness.dynamodb)
    assert harness.aggregator.handle_stream(event(records)) == {"batchItemFailures": []}
    assert harness.summary(A) == saved
    assert "PutItem" not in calls  # nothing new: nothing written


class FailingFor(SummaryStore):
    """A store whose saves of one array fail, as a throttled or unavailable table would."""

    failing: str = ""

    def save(self, summary: Summary) -> Summary:
        if summary.array_id == self.failing:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return super().save(summary)


def test_a_failed_array_is_reported_and_its_replay_counts_once(harness: Harness) -> None:
    w = harness.workers
    records = [w.write(A, 0), w.write(B, 0), w.write(A, 1), w.write(B, 1), w.write(A, 2)]
    failing = FailingFor(harness.dynamodb, harness.settings.arrays_table)
    failing.failing = B
    harness.aggregator.store = failing
    response = harness.aggregator.handle_stream(event(records))
    b_first = records[1]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": b_first}]}
    assert harness.summary(A).counts.running == 3
    assert harness.store.get(B) is None

    # Lambda resumes at B's first record: A's later records come again and are skipped.
    harness.aggregator.store = harness.store
    replay = records[1:]
    assert harness.aggregator.handle_stream(event(replay)) == {"batchItemFailures": []}
    assert harness.summary(A).counts.running == 3
    assert harness.summary(B).counts.running == 2


class RacedOnce(SummaryStore):
    """Another writer (the tick) saves the array between our read and our write, once."""

    raced = False

    def save(self, summary: Summary) -> Summary:
        if not self.raced:
            self.raced = True
            current = self.get(summary.array_id)
            assert current is not None
            super().save(replace(current, stalled_alerted=True))
        return super().save(summary)


def test_a_version_conflict_is_retried_on_a_fresh_read(harness: Harness) -> None:
    w = harness.workers
    harness.aggregator.handle_stream(event([w.write(A, 0)]))
    raced = RacedOnce(harness.dynamodb, harness.settings.arrays_table)
    harness.aggregator.store = raced
    harness.aggregator.handle_stream(event([w.write(A, 1), w.write(A, 0, "completed")]))
    summary = harness.summary(A)
    assert raced.raced
    assert harness.aggregator.conflicts == 1
    assert (summary.counts.running, summary.counts.completed) == (1, 1)
    assert summary.stalled_alerted  # the other writer's change survived
    assert summary.version == 3  # first batch, the other writer, the retried save


def test_save_refuses_a_stale_version(harness: Harness) -> None:
    saved = harness.store.save(Summary.new(A))
    harness.store.save(saved)
    with pytest.raises(ConflictError, match=A):
        harness.store.save(saved)
    with pytest.raises(ConflictError):
        harness.store.save(Summary.new(A))


def test_unusable_records_are_skipped_and_the_rest_applied(harness: Harness) -> None:
    w = harness.workers
    good = w.write(A, 0)
    no_keys = w.write(A, 1)
    del no_keys["dynamodb"]["Keys"]
    bad_sequence = w.write(A, 2)
    bad_sequence["dynamodb"]["SequenceNumber"] = "12ab"
    numeric_key = w.write(A, 3)
    numeric_key["dynamodb"]["Keys"]["array_id"] = {"N": "5"}
    keys_only = w.write(A, 4)
    del keys_only["dynamodb"]["NewImage"]
    garbled = w.write(A, 5)
    garbled["dynamodb"]["NewImage"]["tasks_completed"] = {"N": "not a number"}
    records = [good, "text", None, {"dynamodb": 5}, no_keys, bad_sequence, numeric_key]
    records += [keys_only, garbled]
    assert harness.aggregator.handle_stream(event(records)) == {"batchItemFailures": []}
    summary = harness.summary(A)
    assert (summary.counts.running, summary.counts.invalid) == (1, 1)
    assert harness.aggregator.handle_stream({"Records": "nope"}) == {"batchItemFailures": []}
    assert harness.aggregator.handle_stream({}) == {"batchItemFailures": []}


def test_recount_queries_every_page_and_never_scans(harness: Harness) -> None:
    w = harness.workers
    # ~1.3 MB of rows: more than one Query page.
    for i in range(130):
        w.write(A, i, "completed" if i % 2 else "running", 1, message="m" * 10_000)
    w.write(A, 500, "weird")
    w.write(B, 0)
    calls = count_calls(harness.dynamodb)
    summary = harness.aggregator.recount(A)
    assert calls["Query"] >= 2
    assert "Scan" not in calls
    assert (summary.counts.running, summary.counts.completed, summary.counts.invalid) == (
        65,
        65,
        1,
    )
    assert summary.recounted_at_ms == int(T0.timestamp() * 1000)
    assert harness.summary(A) == summary


def test_recount_corrects_drift_and_keeps_watermarks(harness: Harness) -> None:
    w = harness.workers
    harness.aggregator.handle_stream(event([w.write(A, i) for i in range(4)]))
    # Rows written while the stream was not watched: only a recount can see them.
    w.write(A, 0, "completed")
    w.write(A, 9, "failed")
    before = harness.summary(A)
    after = harness.aggregator.recount(A)
    assert (after.counts.running, after.counts.completed, after.counts.failed) == (3, 1, 1)
    assert after.watermarks == before.watermarks


def emf_lines(out: str, namespace: str = "Spawn/Arrays") -> list[dict[str, Any]]:
    """The EMF documents of one namespace (the tick also publishes `Spawn/Cost`)."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [
        line
        for line in lines
        if "_aws" in line and line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace
    ]


def figures(document: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert directive["Dimensions"] == [["ArrayId"]]
    values = {name: (unit, document[name]) for name, unit in names.items()}
    return directive["Namespace"], document["ArrayId"], values


@pytest.fixture
def alert_queue(harness: Harness) -> str:
    sqs = harness.session.client("sqs")
    sns = harness.session.client("sns")
    url = sqs.create_queue(QueueName="alerts-seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for topic in ("AlertsTopic", "CriticalTopic"):
        sns.subscribe(TopicArn=harness.infra.arns[topic], Protocol="sqs", Endpoint=arn)
    return url


def received(harness: Harness, url: str) -> list[dict[str, Any]]:
    sqs = harness.session.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def value(found: Any) -> float:
    return float(found[0] if isinstance(found, list) else found)


def test_tick_publishes_metrics_and_a_finished_array_stops_after_its_final_figures(
    harness: Harness, capsys: Any, alert_queue: str
) -> None:
    w = harness.workers
    harness.sizes[A] = ("render", 4)
    harness.aggregator.handle_stream(
        event([w.write(A, 0, "completed", 5), w.write(A, 1, "failed", 1), w.write(A, 2)])
    )
    capsys.readouterr()
    report = harness.aggregator.tick(T0 + timedelta(seconds=30))
    # Changes arrived 30 s ago: too recent for a recount, which waits for a quiet array.
    assert (report.arrays, report.published, report.recounted) == (1, 1, 0)
    [line] = emf_lines(capsys.readouterr().out)
    namespace, array_id, values = figures(line)
    assert (namespace, array_id) == ("Spawn/Arrays", A)
    assert {k: (u, value(v)) for k, (u, v) in values.items()} == {
        "WorkersTotal": ("Count", 4),
        "WorkersRunning": ("Count", 1),
        "WorkersCompleted": ("Count", 1),
        "WorkersFailed": ("Count", 1),
        "WorkersStalled": ("Count", 0),
        "TasksCompleted": ("Count", 6),
        "PercentComplete": ("Percent", 50.0),
    }
    # Running: published every tick even without changes.
    harness.aggregator.tick(T0 + timedelta(seconds=40))
    assert len(emf_lines(capsys.readouterr().out)) == 1

    harness.aggregator.handle_stream(
        event([w.write(A, 2, "completed", 3), w.write(A, 3, "completed", 1)])
    )
    harness.aggregator.tick(T0 + timedelta(seconds=50))
    [final] = emf_lines(capsys.readouterr().out)
    assert value(figures(final)[2]["PercentComplete"][1]) == 100.0
    assert harness.summary(A).final_published
    report = harness.aggregator.tick(T0 + timedelta(seconds=60))
    assert emf_lines(capsys.readouterr().out) == []
    assert report.published == 0

    bodies = received(harness, alert_queue)
    kinds = sorted(json.loads(b["Message"])["event_type"] for b in bodies)
    assert kinds == ["array_failing", "array_finished"]
    # By type: an alert's details now name `finished_at`, so its text cannot tell.
    finished = next(b for b in bodies if json.loads(b["Message"])["event_type"] == "array_finished")
    assert finished["MessageAttributes"]["array_id"]["Value"] == A
    assert finished["MessageAttributes"]["event_type"]["Value"] == "array_finished"
    assert finished["Subject"].startswith("Array render finished")


def test_stalled_workers_alert_once_per_episode(
    harness: Harness, capsys: Any, alert_queue: str
) -> None:
    w = harness.workers
    harness.aggregator.handle_stream(event([w.write(A, i, at=T0) for i in range(3)]))
    stall = harness.settings.stall_after_seconds
    late = T0 + timedelta(seconds=stall + 1)
    harness.aggregator.tick(late)
    harness.aggregator.tick(late + timedelta(seconds=10))
    [alert] = received(harness, alert_queue)
    assert json.loads(alert["Message"])["details"]["workers"]["stalled"] == 3
    assert alert["MessageAttributes"]["event_type"]["Value"] == "workers_stalled"
    stalled = [
        value(figures(d)[2]["WorkersStalled"][1]) for d in emf_lines(capsys.readouterr().out)
    ]
    assert stalled == [3, 3]
    # They report again: the episode ends; stalling again alerts again.
    harness.aggregator.handle_stream(event([w.write(A, i, at=late) for i in range(3)]))
    harness.aggregator.tick(late + timedelta(seconds=20))
    assert received(harness, alert_queue) == []
    harness.aggregator.tick(late + timedelta(seconds=stall + 1))
    assert len(received(harness, alert_queue)) == 1


def test_reads_scale_with_rows_changed_not_with_the_table(harness: Harness, capsys: Any) -> None:
    w = harness.workers
    for array_id in (A, B):
        harness.aggregator.handle_stream(event([w.write(array_id, i) for i in range(200)]))
    quiet = T0 + timedelta(seconds=61)
    assert harness.aggregator.tick(quiet).recounted == 2  # first sight, once quiet: one each
    changed = [w.write(A, i, "completed", 1, at=quiet) for i in range(2)]  # 1 % of the rows
    before = harness.aggregator.items_read
    harness.aggregator.handle_stream(event(changed))
    assert harness.aggregator.items_read - before == 1  # one summary read
    report = harness.aggregator.tick(quiet + timedelta(seconds=10))
    assert report.recounted == 0
    assert report.items_read == 4  # the two summaries and their index keys, no progress rows


def test_recount_waits_until_the_array_is_quiet(harness: Harness) -> None:
    w = harness.workers
    harness.aggregator.handle_stream(event([w.write(A, 0), w.write(A, 1)]))
    assert harness.aggregator.tick(T0 + timedelta(seconds=59)).recounted == 0
    assert harness.aggregator.tick(T0 + timedelta(seconds=61)).recounted == 1
    # Recounted now; the next one is due after RECOUNT_EVERY_SECONDS, not at every tick.
    assert harness.aggregator.tick(T0 + timedelta(seconds=120)).recounted == 0


def test_rows_with_over_long_fields_are_invalid_and_the_summary_still_saves(
    harness: Harness,
) -> None:
    # D: five valid-looking rows with 100 KB hostnames would put the summary's recent
    # rows past DynamoDB's 400 KB item limit and freeze the array's progress.
    w = harness.workers
    newest = T0 + timedelta(seconds=1)
    records = [w.write(A, 0)]
    records += [w.write(A, i, at=newest, hostname="h" * 100_000) for i in range(1, 6)]
    assert harness.aggregator.handle_stream(event(records)) == {"batchItemFailures": []}
    summary = harness.summary(A)
    assert (summary.counts.invalid, summary.counts.running) == (5, 1)
    assert [row.task_index for row in summary.recent] == [0]


def test_the_largest_summary_the_bounds_allow_saves(harness: Harness) -> None:
    # Every stored field is bounded: the longest valid texts in the recent rows, a running
    # histogram spanning the whole stall window, a full ETA window of samples, a day of
    # shards' watermarks.
    from chalicelib.contract.rows import HOSTNAME_MAX, INSTANCE_ID_MAX, MESSAGE_MAX, NUMBER_MAX, Row
    from chalicelib.progress.summary import (
        FOLD_MARGIN_SECONDS,
        RATE_WINDOW_SECONDS,
        RECENT_ROWS,
        SAMPLE_EVERY_SECONDS,
        Watermark,
    )

    second = int(T0.timestamp())
    widest = harness.settings.stall_after_seconds + FOLD_MARGIN_SECONDS + 1
    rows = tuple(
        Row(
            A,
            NUMBER_MAX - i,
            "running",
            NUMBER_MAX,
            second * 1000,
            "i" * INSTANCE_ID_MAX,
            "h" * HOSTNAME_MAX,
            NUMBER_MAX,
            NUMBER_MAX,
            "m" * MESSAGE_MAX,
        )
        for i in range(RECENT_ROWS)
    )
    samples = tuple(
        (second - t, NUMBER_MAX) for t in range(0, RATE_WINDOW_SECONDS + 1, SAMPLE_EVERY_SECONDS)
    )
    # Shard ids are at most 65 characters; a hot array read from 100 shards in a day.
    watermarks = {f"shardId-{n:057d}": Watermark("9" * 40, second * 1000) for n in range(100)}
    summary = Summary(
        A,
        running_by_second={second - s: NUMBER_MAX for s in range(widest)},
        recent=rows,
        samples=samples[::-1],
        watermarks=watermarks,
    )
    harness.store.save(summary)
    assert harness.summary(A).recent == rows


def test_a_recount_does_not_overwrite_changes_the_stream_applied_during_its_query(
    harness: Harness,
) -> None:
    # C: the recount's Query reads page by page; between two pages the stream applies a
    # completion of a row the Query has already read.
    w = harness.workers
    # ~1.3 MB of rows: more than one Query page.
    records = [w.write(A, i, message="m" * 10_000) for i in range(130)]
    harness.aggregator.handle_stream(event(records))
    pages: list[int] = []

    def completion_between_pages(**_: object) -> None:
        pages.append(1)
        if len(pages) == 1:
            done = w.write(A, 0, "completed", 1, at=T0 + timedelta(seconds=5))
            assert harness.aggregator.handle_stream(event([done])) == {"batchItemFailures": []}

    harness.dynamodb.meta.events.register("after-call.dynamodb.Query", completion_between_pages)
    harness.now = T0 + timedelta(seconds=3)
    harness.aggregator.recount(A)
    assert len(pages) >= 2
    summary = harness.summary(A)
    assert (summary.counts.running, summary.counts.completed) == (129, 1)


def test_a_change_made_during_the_recounts_query_is_recounted_once_the_array_is_quiet(
    harness: Harness,
) -> None:
    # C: a row changes while the Query runs and the Query reads its new image; its stream
    # record arrives after the recount is saved. Whether the Query saw the old or the new
    # image cannot be told, so the array is recounted again once it is quiet.
    w = harness.workers
    harness.aggregator.handle_stream(
        event([w.write(A, i, message="m" * 10_000) for i in range(130)])
    )
    in_flight: list[dict[str, Any]] = []

    def change_during_the_query(**_: object) -> None:
        if not in_flight:
            in_flight.append(w.write(A, 129, "completed", 1, at=T0 + timedelta(seconds=5)))
            harness.now = T0 + timedelta(seconds=6)

    harness.dynamodb.meta.events.register("after-call.dynamodb.Query", change_during_the_query)
    harness.now = T0 + timedelta(seconds=3)
    harness.aggregator.recount(A)
    assert harness.aggregator.handle_stream(event(in_flight)) == {"batchItemFailures": []}
    quiet = T0 + timedelta(seconds=5 + 61)
    harness.now = quiet
    assert harness.aggregator.tick(quiet).recounted == 1
    summary = harness.summary(A)
    assert (summary.counts.running, summary.counts.completed) == (129, 1)


def shard_event(
    records: list[dict[str, Any]], shard_id: str, sequences: list[int]
) -> dict[str, Any]:
    """A Lambda batch from one shard, as the mapping (with its tumbling window) delivers
    it: the event names the shard; each record gets the shard's sequence number."""
    for record, number in zip(records, sequences, strict=True):
        record["dynamodb"]["SequenceNumber"] = str(number)
        record["eventID"] = f"{shard_id}-{number}"
    return {
        "Records": records,
        "shardId": shard_id,
        "window": {"start": "2026-01-27T10:00:00Z", "end": "2026-01-27T10:15:00Z"},
        "state": {},
        "isFinalInvokeForWindow": False,
        "isWindowTerminatedEarly": False,
    }


def test_records_of_one_array_from_split_shards_are_each_applied_once(harness: Harness) -> None:
    # F: the array's partition splits. The parent's records come first; then the two
    # children, whose sequence numbers interleave, are read in parallel. Lambda retries
    # the first child's batch too.
    w = harness.workers
    parent = shard_event([w.write(A, i) for i in range(4)], "shardId-parent", [100, 101, 102, 103])
    left = shard_event(
        [w.write(A, 0, "completed", 1), w.write(A, 1, "completed", 1), w.write(A, 4)],
        "shardId-child-left",
        [1000, 1002, 1004],
    )
    right = shard_event(
        [w.write(A, 2, "failed"), w.write(A, 3, "completed", 1), w.write(A, 5)],
        "shardId-child-right",
        [1001, 1003, 1005],
    )
    responses = [harness.aggregator.handle_stream(b) for b in (parent, right, left, right)]
    assert all(response["batchItemFailures"] == [] for response in responses)
    summary = harness.summary(A)
    counts = (summary.counts.running, summary.counts.completed, summary.counts.failed)
    assert counts == (2, 3, 1)
    assert summary.counts.tasks_completed == 3
    # With a tumbling window Lambda wants the window's state back, or fails the batch.
    assert all(response["state"] == {} for response in responses)
