"""`spawn-report progress` feeds the fleet alarms: each report publishes the increments
of `Spawn/Workers` `TasksCompleted` and `ErrorCount` (no dimension) since the worker's
previous one, exact across separate processes, resets and sampling. Read back with
GetMetricData as `spawn-fleet-error-rate` and `spawn-low-throughput` read them (SUM)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from spawn_report.counters import STATE_FILE

from tests.integration.kit.conftest import ARRAY, SPAWN_REPORT, Aws, run_kit, spool_lines


def worker(env: dict[str, str], index: int) -> dict[str, str]:
    return {**env, "JOB_ARRAY_INDEX": str(index), "SPAWN_INSTANCE_ID": f"i-{index:017x}"}


def report(env: dict[str, str], status: str, tasks: int, *options: str) -> None:
    """One `spawn-report progress` process, as a worker's script runs it."""
    result = run_kit(env, "progress", "--status", status, "--tasks", str(tasks), *options)
    assert (result.returncode, result.stderr) == (0, "")


def test_increments_over_separate_processes_sum_to_the_fleets_tasks_and_errors(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    first, second = worker(kit_env, 0), worker(kit_env, 1)
    report(first, "running", 0)
    report(first, "running", 10, "--errors", "1")
    report(second, "running", 5)
    report(first, "running", 25, "--errors", "1")
    report(second, "failed", 12, "--errors", "2")  # final: sends what waits
    report(first, "completed", 40, "--errors", "3")

    assert aws.fleet_wide("TasksCompleted") == 40 + 12
    assert aws.fleet_wide("ErrorCount") == 3 + 2
    assert aws.fleet_wide("TasksCompleted", "SampleCount") == 6  # one value per report
    assert aws.fleet_wide("TasksCompleted", "Maximum") == 15  # 25 → 40: increments, not totals
    assert spool_lines(spool_dir) == []
    saved = json.loads((spool_dir / STATE_FILE).read_text())
    assert all(isinstance(record.pop("t"), float) for record in saved)  # when last seen
    assert saved == [
        {"array_id": ARRAY, "task_index": 0, "tasks": 40, "errors": 3},
        {"array_id": ARRAY, "task_index": 1, "tasks": 12, "errors": 2},
    ]


def test_a_counter_going_backwards_counts_from_zero(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    report(kit_env, "running", 30, "--errors", "2")
    report(kit_env, "running", 5, "--errors", "0")  # the task re-run from scratch
    report(kit_env, "completed", 12, "--errors", "1")

    assert aws.fleet_wide("TasksCompleted") == 30 + 5 + 7
    assert aws.fleet_wide("ErrorCount") == 2 + 0 + 1
    assert aws.fleet_wide("TasksCompleted", "Minimum") == 5  # never negative


def test_reports_skipped_by_sampling_lose_no_increments(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    every = ("--every-n-tasks", "10")
    report(kit_env, "running", 3, *every)
    report(kit_env, "running", 7, "--errors", "1", *every)
    report(kit_env, "running", 10, "--errors", "1", *every)
    report(kit_env, "running", 17, "--errors", "2", *every)
    waiting = [(e["name"], e["value"]) for e in spool_lines(spool_dir) if e["kind"] == "metric"]
    assert waiting == [("TasksCompleted", 10), ("ErrorCount", 1)]  # task 10 only

    report(kit_env, "completed", 19, "--errors", "2", *every)

    assert aws.fleet_wide("TasksCompleted") == 19
    assert aws.fleet_wide("ErrorCount") == 2
    assert aws.fleet_wide("TasksCompleted", "SampleCount") == 2


def test_concurrent_reports_of_many_workers_are_each_counted_once(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    """Eight workers sharing a spool (as containers on one instance do) report at once:
    the counter state is read and rewritten under the spool's lock, so none is lost."""
    env = {**kit_env, "SPAWN_REPORT_FLUSH_SECONDS": "3600"}
    processes = [
        subprocess.Popen(  # noqa: S603 - the kit's console script
            [SPAWN_REPORT, "progress", "--status", "running", "--tasks", str(index + 1)],
            env=worker(env, index),
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(8)
    ]
    assert [(p.wait(60), p.stderr.read() if p.stderr else "") for p in processes] == [(0, "")] * 8
    for process in processes:
        if process.stderr:
            process.stderr.close()
    assert len(json.loads((spool_dir / STATE_FILE).read_text())) == 8

    flushed = run_kit(kit_env, "flush")

    assert (flushed.returncode, flushed.stderr) == (0, "")
    assert aws.fleet_wide("TasksCompleted") == sum(range(1, 9))
