"""The simulator's workers log as `spawn-report run` does (local/sim_logs.py): their
lines are in moto's CloudWatch Logs under the agreed stream, and a failing one dies of
a real traceback whose last line, and exit code 1, are in its row."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from spawn_report.logs import GROUP, stream_name

import local.simulator as simulator
from local.simulator import ArrayPlan, FleetSimulator
from tests.integration.test_simulator import REGION, TABLE, Aws, FakeClock, rows, steps
from tests.integration.test_simulator import aws as aws  # the fixture

PLAN = ArrayPlan(name="train", size=3, instance_type="g4dn.xlarge", spot=False, task_seconds=6.0)


def sim(aws: Aws, clock: FakeClock, logs: Any) -> FleetSimulator:
    return FleetSimulator(
        ec2=aws.ec2,
        events=aws.events,
        dynamodb=aws.dynamodb,
        sts=aws.sts,
        progress_table=TABLE,
        arrays=[PLAN],
        rng=random.Random(7),
        clock=clock,
        interruption_probability=0.0,
        log=lambda _line: None,
        logs=logs,
    )


def stream(logs: Any, item: dict[str, Any]) -> list[str]:
    name = stream_name(
        item["array_id"]["S"], int(item["task_index"]["N"]), item["instance_id"]["S"]
    )
    page = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True)
    return [e["message"] for e in page["events"]]


def test_failing_workers_die_of_cuda_oom_in_their_stream_and_their_row(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "FAILURE_PROBABILITY", 1.0)
    logs = boto3.client("logs", region_name=REGION)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))  # logs take recent events only
    fleet = sim(aws, clock, logs)

    steps(fleet, clock, 40)

    failed = [r for r in rows(aws) if r["status"]["S"] == "failed"]
    assert len(failed) >= PLAN.size  # every worker of each round so far
    for item in failed:
        assert item["exit_code"] == {"N": "1"}
        assert item["message"]["S"].endswith("RuntimeError: CUDA out of memory")
        lines = stream(logs, item)
        assert lines[0].startswith(f"worker {item['task_index']['N']} on ip-")
        at = lines.index("Traceback (most recent call last):")
        assert lines[-1] == "RuntimeError: CUDA out of memory"
        assert any("in _allocate" in line for line in lines[at:])
        assert all(line.startswith(("tasks ", "ERROR task ")) for line in lines[1:at])


def test_completed_workers_record_exit_code_0_and_their_progress_lines(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "FAILURE_PROBABILITY", 0.0)
    logs = boto3.client("logs", region_name=REGION)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    fleet = sim(aws, clock, logs)

    steps(fleet, clock, 40)

    done = [r for r in rows(aws) if r["status"]["S"] == "completed"]
    assert len(done) >= PLAN.size
    for item in done:
        assert item["exit_code"] == {"N": "0"}
        assert item["tasks_completed"] == item["tasks_total"]
        lines = stream(logs, item)
        assert lines[-2:] == [
            f"tasks {item['tasks_total']['N']}/{item['tasks_total']['N']} done",
            "all tasks done",
        ]
