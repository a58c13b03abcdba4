"""One worker's reporting for an hour: the workers' kit against spawn's guide.

The workload (simulated time, one worker): 1,000 tasks over an hour, a progress update
every 10 tasks (plus the first and the final one), one metric value per task, and a GPU
sample every 60 s. The guide's scripts make one `put-item` per progress update, one
`put-metric-data` per metric per report, and three `put-metric-data` per GPU per sample;
those calls are made here with boto3 and counted. The kit runs the same workload
through `Reporter` with its default settings on a virtual clock, and its calls are
counted the same way (a botocore `before-call` hook on both), against moto in-process.
The kit's progress reports also carry the fleet counters (`TasksCompleted` and
`ErrorCount` increments, which the fleet alarms read); the guide's
worker-with-metrics.sh would spend two more `put-metric-data` per update on those, which
the guide's count here leaves out, so the ratio is a floor.

Progress rows are written when reported, as the guide writes them, so the kit's saving
is in `PutMetricData`. Figures: calls guide / kit, all and `PutMetricData` only (1 GPU
is the guide's own g5.xlarge; 4 and 8 GPUs shown too), data points lost by the kit
(must be 0), the wall time of both runs, and what one `spawn-report metric` call costs
against a bare Python start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from spawn_report import Identity, Reporter, Settings
from spawn_report.gpu import parse

from bench.report import Figure
from local.provision import load_template, provision
from testkit.faults import count_calls

TASKS = 1000
HOUR = 3600.0
PROGRESS_EVERY = 10
GPU_EVERY = 60.0
T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC).timestamp()
WHO = Identity("bench-20260127-00be0c", 0, "i-0be0c0000000000000", "ip-10-0-0-1", "us-east-1")
TABLE = "spawn-progress"


@dataclass
class Run:
    calls: int
    by_operation: dict[str, int]
    seconds: float
    values: int = 0


def _gpu_text(gpus: int) -> str:
    return "".join(f"{i}, {50 + i}, {1000 + i}, 24576, {60 + i}, 70.5\n" for i in range(gpus))


def _timeline(gpus: int) -> list[tuple[float, str, int]]:
    """(seconds into the hour, what happens, task count) in time order."""
    events = [(HOUR * (i + 1) / TASKS, "task", i + 1) for i in range(TASKS)]
    events += [(GPU_EVERY * k, "gpu", 0) for k in range(int(HOUR / GPU_EVERY))]
    events.append((0.0, "start", 0))
    return sorted(events, key=lambda e: (e[0], e[1] != "start"))


def _clients() -> tuple[Any, Any]:
    session = boto3.Session(region_name="us-east-1")
    table = load_template()["Resources"]["ProgressTable"]
    provision(session, {"Resources": {"ProgressTable": table}})
    return session.client("dynamodb"), session.client("cloudwatch")


def _kit(gpus: int, flush_seconds: float | None = None) -> Run:
    with mock_aws(), tempfile.TemporaryDirectory() as spool:
        dynamodb, cloudwatch = _clients()
        counts = count_calls(dynamodb, cloudwatch)
        now = [T0]
        settings = Settings(spool_dir=Path(spool), background=False)
        if flush_seconds is not None:
            settings = Settings(
                spool_dir=Path(spool), background=False, flush_seconds=flush_seconds
            )
        report = Reporter(
            settings, identity=WHO, dynamodb=dynamodb, cloudwatch=cloudwatch, clock=lambda: now[0]
        )
        sent = 0
        flush = report.flush

        def counting_flush(budget_seconds: float | None = None) -> Any:
            nonlocal sent
            result = flush(budget_seconds)
            sent += result.values_sent
            return result

        report.flush = counting_flush  # type: ignore[method-assign]
        sample = parse(_gpu_text(gpus))
        started = time.perf_counter()
        for at, kind, tasks in _timeline(gpus):
            now[0] = T0 + at
            if kind == "start":
                report.progress("running", 0, tasks_total=TASKS)
            elif kind == "gpu":
                report.gpus(sample)
            else:
                report.metric("TaskDuration", HOUR / TASKS, unit="Seconds")
                report.progress("running", tasks, tasks_total=TASKS, every_n_tasks=PROGRESS_EVERY)
        now[0] = T0 + HOUR
        report.progress("completed", TASKS, tasks_total=TASKS)
        seconds = time.perf_counter() - started
        return Run(sum(counts.values()), counts, seconds, sent)


def _guide(gpus: int) -> Run:
    """The guide's worker-tracked.sh, worker-with-metrics.sh and report-gpu-metrics.sh."""
    with mock_aws():
        dynamodb, cloudwatch = _clients()
        counts = count_calls(dynamodb, cloudwatch)
        sample = parse(_gpu_text(gpus))

        def update_progress(status: str, completed: int, at: float) -> None:
            stamp = datetime.fromtimestamp(T0 + at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            dynamodb.put_item(
                TableName=TABLE,
                Item={
                    "array_id": {"S": WHO.array_id or ""},
                    "task_index": {"N": "0"},
                    "status": {"S": status},
                    "tasks_completed": {"N": str(completed)},
                    "last_update": {"S": stamp},
                    "instance_id": {"S": WHO.instance_id or ""},
                    "hostname": {"S": WHO.hostname or ""},
                },
            )

        def report_metric(namespace: str, name: str, value: float, unit: str) -> None:
            cloudwatch.put_metric_data(
                Namespace=namespace,
                MetricData=[
                    {
                        "MetricName": name,
                        "Value": value,
                        "Unit": unit,
                        "Dimensions": [{"Name": "InstanceId", "Value": WHO.instance_id or ""}],
                    }
                ],
            )

        started = time.perf_counter()
        for at, kind, tasks in _timeline(gpus):
            if kind == "start":
                update_progress("running", 0, at)
            elif kind == "gpu":
                for gpu in sample:
                    report_metric(
                        "Spawn/GPU", "GPUUtilization", gpu.values["GPUUtilization"], "Percent"
                    )
                    report_metric(
                        "Spawn/GPU", "GPUMemoryUsed", gpu.values["GPUMemoryUsed"], "Megabytes"
                    )
                    report_metric(
                        "Spawn/GPU", "GPUTemperature", gpu.values["GPUTemperature"], "None"
                    )
            else:
                report_metric("Spawn/Workers", "TaskDuration", HOUR / TASKS, "Seconds")
                if tasks % PROGRESS_EVERY == 0:
                    update_progress("running", tasks, at)
        update_progress("completed", TASKS, HOUR)
        seconds = time.perf_counter() - started
        return Run(sum(counts.values()), counts, seconds)


def _cli_seconds(command: list[str], env: dict[str, str], runs: int = 10) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603
    return (time.perf_counter() - started) / runs


def run() -> list[Figure]:
    figures: list[Figure] = []
    for gpus in (1, 4, 8):
        guide, kit = _guide(gpus), _kit(gpus)
        # A value per task, 5 per GPU sample, 2 fleet counters per recorded progress
        # report (the first, every 10th task, the final one).
        reports = 1 + TASKS // PROGRESS_EVERY + 1
        expected = TASKS + int(HOUR / GPU_EVERY) * gpus * 5 + 2 * reports
        detail = (
            f"guide {guide.calls} calls {guide.by_operation}, kit {kit.calls} {kit.by_operation}"
        )
        figures.append(
            Figure(
                f"API calls for one worker's hour, guide / kit, {gpus} GPU(s)",
                guide.calls / kit.calls,
                "x fewer",
                higher_is_better=True,
                detail=detail,
            )
        )
        # Progress rows go out when reported, one PutItem each as in the guide (issue
        # 21: the live view must not lag); the kit's saving is in the metric calls.
        figures.append(
            Figure(
                f"PutMetricData calls for that hour, guide / kit, {gpus} GPU(s)",
                guide.by_operation["PutMetricData"] / kit.by_operation["PutMetricData"],
                "x fewer",
                target=10.0 if gpus == 1 else None,
                higher_is_better=True,
            )
        )
        figures.append(
            Figure(
                f"data points the kit lost, {gpus} GPU(s)",
                expected - kit.values,
                "values",
                target=0,
                detail=f"{kit.values} of {expected} sent",
            )
        )
        if gpus == 1:
            figures.append(
                Figure(
                    "wall time of the hour's reporting, guide / kit (in-process, moto)",
                    guide.seconds / kit.seconds,
                    "x faster",
                    detail=f"guide {guide.seconds:.2f} s, kit {kit.seconds:.2f} s",
                )
            )
            faster = _kit(gpus, flush_seconds=60.0)
            figures.append(
                Figure(
                    "API calls, guide / kit with SPAWN_REPORT_FLUSH_SECONDS=60, 1 GPU",
                    guide.calls / faster.calls,
                    "x fewer",
                    detail=f"kit {faster.calls} {faster.by_operation}",
                )
            )
    with tempfile.TemporaryDirectory() as spool:
        env = {
            **os.environ,
            "SPAWN_REPORT_DIR": spool,
            "SPAWN_REPORT_BACKGROUND": "false",
            "SPAWN_REPORT_FLUSH_SECONDS": "86400",
            "JOB_ARRAY_ID": WHO.array_id or "",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        kit_cli = str(Path(sys.executable).parent / "spawn-report")
        append = _cli_seconds([kit_cli, "metric", "TaskDuration", "3.6", "--unit", "Seconds"], env)
        bare = _cli_seconds([sys.executable, "-c", "pass"], env)
    figures.append(
        Figure(
            "one `spawn-report metric` call (spooled, no AWS call) / a bare Python start",
            append / bare,
            "x",
            detail=f"{append * 1000:.0f} ms vs {bare * 1000:.0f} ms",
        )
    )
    return figures
