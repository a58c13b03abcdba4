"""The kit as a library, in-process on moto: what a flush costs in AWS calls, and what
the conditional row write protects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from spawn_report import Identity, Reporter, Settings
from spawn_report.gpu import parse

from local.provision import load_template, provision
from testkit.faults import count_calls

T0 = 1_769_508_000.0  # 2026-01-27T10:00:00Z
WHO = Identity("render-20260127-a1b2c3", 7, "i-0123456789abcdef7", "ip-10-0-0-7", "us-east-1")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reporter(
    session: boto3.Session, tmp_path: Path
) -> tuple[Reporter, Clock, Callable[[str], int]]:
    table = load_template()["Resources"]["ProgressTable"]
    provision(session, {"Resources": {"ProgressTable": table}})
    dynamodb, cloudwatch = session.client("dynamodb"), session.client("cloudwatch")
    counted = [count_calls(dynamodb), count_calls(cloudwatch)]
    clock = Clock()
    settings = Settings(spool_dir=tmp_path / "spool", background=False, flush_seconds=120)
    report = Reporter(settings, identity=WHO, dynamodb=dynamodb, cloudwatch=cloudwatch, clock=clock)

    def calls(operation: str) -> int:
        return sum(counts.get(operation, 0) for counts in counted)

    return report, clock, calls


EIGHT_GPUS = "".join(f"{i}, {i * 10}, 100, 200, 50, 300.0\n" for i in range(8))


def test_a_minute_of_reports_costs_one_call_per_table_and_namespace(
    reporter: tuple[Reporter, Clock, Callable[[str], int]],
) -> None:
    report, clock, calls = reporter
    for task in range(1, 501):
        clock.now = T0 + task * 0.2
        report.metric("TaskDuration", 0.2, unit="Seconds")
        report.progress("running", task, tasks_total=1000, every_n_tasks=10)
        if task % 100 == 0:
            report.gpus(parse(EIGHT_GPUS))
    # Each recorded row went at once; every metric waits.
    assert (calls("PutItem"), calls("PutMetricData")) == (50, 0)

    result = report.flush()

    assert (calls("PutItem"), calls("PutMetricData")) == (50, 2)  # Spawn/Workers, Spawn/GPU
    assert result.rows_written == 0
    # A value per task, 5 per GPU sample, and the fleet counters of 50 progress reports.
    assert result.values_sent == 500 + 5 * 8 * 5 + 2 * 50
    assert result.dropped == 0


def test_reports_are_sent_once_the_oldest_has_waited_the_flush_interval(
    reporter: tuple[Reporter, Clock, Callable[[str], int]],
) -> None:
    report, clock, calls = reporter
    report.metric("Processed", 1)
    clock.now = T0 + 119
    report.metric("Processed", 1)
    assert calls("PutMetricData") == 0

    clock.now = T0 + 120
    report.metric("Processed", 1)

    assert calls("PutMetricData") == 1
    assert report.flush().values_sent == 0  # nothing left


def test_one_call_carries_a_sample_of_eight_gpus(
    reporter: tuple[Reporter, Clock, Callable[[str], int]],
) -> None:
    report, _, calls = reporter
    report.gpus(parse(EIGHT_GPUS))

    result = report.flush()

    assert calls("PutMetricData") == 1
    assert result.values_sent == 8 * 5


def test_an_older_row_replayed_late_never_overwrites_a_newer_one(
    reporter: tuple[Reporter, Clock, Callable[[str], int]], session: boto3.Session
) -> None:
    report, clock, _ = reporter
    report.settings = replace(report.settings, rows_at_once=False)
    report.progress("running", 10)  # waits in the spool (a flush that was killed, say)
    stale = (report.spool.directory / "pending.jsonl").read_text()
    clock.now = T0 + 30
    report.progress("completed", 20)  # final: sent at once, with the spooled row
    (report.spool.directory / "pending.jsonl").write_text(stale)  # replayed later

    result = report.flush()

    assert (result.rows_written, result.rows_superseded) == (0, 1)
    [row] = session.client("dynamodb").scan(TableName="spawn-progress")["Items"]
    assert (row["status"]["S"], row["tasks_completed"]["N"]) == ("completed", "20")
