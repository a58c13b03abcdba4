"""`spawn-report metric`, `timed` and `gpu`: batched, read back with GetMetricData."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from spawn_report.spool import Spool

from tests.integration.kit.conftest import ARRAY, INSTANCE, Aws, run_kit, spool_lines

PYTHON_SLEEP_EXIT_3 = ["python3", "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"]


def test_metrics_wait_in_the_spool_then_one_flush_sends_them(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    for value in ("2.5", "2.5", "4"):
        result = run_kit(
            kit_env, "metric", "TaskRate", value, "--unit", "Count/Second", "--dim", "Stage=render"
        )
        assert (result.returncode, result.stderr) == (0, "")
    dimensions = {"ArrayId": ARRAY, "Stage": "render"}
    assert len(spool_lines(spool_dir)) == 3
    assert aws.metric("Spawn/Workers", "TaskRate", dimensions, "SampleCount") == 0

    flushed = run_kit(kit_env, "flush")

    assert (flushed.returncode, flushed.stderr) == (0, "")
    assert aws.metric("Spawn/Workers", "TaskRate", dimensions, "SampleCount") == 3
    assert aws.metric("Spawn/Workers", "TaskRate", dimensions, "Sum") == 9
    assert spool_lines(spool_dir) == []


def test_timed_records_the_duration_and_exits_with_the_commands_status(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    result = run_kit(kit_env, "timed", "Processing", "--", *PYTHON_SLEEP_EXIT_3)
    missing = run_kit(kit_env, "timed", "Upload", "--", "no-such-command-here")
    run_kit(kit_env, "flush")

    assert result.returncode == 3
    assert missing.returncode == 127
    assert "cannot run 'no-such-command-here'" in missing.stderr
    dimensions = {"ArrayId": ARRAY, "Operation": "Processing"}
    milliseconds = aws.metric("Spawn/Performance", "ProcessingDuration", dimensions)
    assert 300 <= milliseconds < 10_000


def test_a_background_flusher_sends_what_waits_without_another_call(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    env = {**kit_env, "SPAWN_REPORT_BACKGROUND": "true", "SPAWN_REPORT_FLUSH_SECONDS": "1"}

    result = run_kit(env, "metric", "QueueDepth", "12", "--unit", "Count")

    assert (result.returncode, result.stderr) == (0, "")
    deadline = time.monotonic() + 20
    while aws.metric("Spawn/Workers", "QueueDepth", {"ArrayId": ARRAY}) != 12:
        assert time.monotonic() < deadline, (spool_dir / "flusher.log").read_text()
        time.sleep(0.2)
    spool = Spool(spool_dir)
    while spool.flusher_alive():  # it exits once the spool is empty
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert spool_lines(spool_dir) == []


# --- GPUs -------------------------------------------------------------------------------


def fake_nvidia_smi(directory: Path, output: str, status: int = 0) -> dict[str, str]:
    """A `nvidia-smi` on PATH that prints `output` for any query."""
    directory.mkdir(exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def gpu_lines(count: int) -> str:
    return "".join(
        f"{i}, {10 * i + 5}, {1000 + i}, 24576, {40 + i}, {60.5 + i}\n" for i in range(count)
    )


@pytest.mark.parametrize("gpus", [1, 8])
def test_gpu_reports_every_gpu_per_index(
    aws: Aws, kit_env: dict[str, str], tmp_path: Path, gpus: int
) -> None:
    env = {**kit_env, **fake_nvidia_smi(tmp_path / "bin", gpu_lines(gpus))}

    result = run_kit(env, "gpu", "--every", "0", "--count", "2")

    assert (result.returncode, result.stderr) == (0, "")
    for index in range(gpus):
        dimensions = {"ArrayId": ARRAY, "InstanceId": INSTANCE, "GPUIndex": str(index)}
        assert aws.metric("Spawn/GPU", "GPUUtilization", dimensions, "Maximum") == 10 * index + 5
        assert aws.metric("Spawn/GPU", "GPUUtilization", dimensions, "SampleCount") == 2
        assert aws.metric("Spawn/GPU", "GPUMemoryUsed", dimensions, "Maximum") == 1000 + index
        assert aws.metric("Spawn/GPU", "GPUMemoryTotal", dimensions, "Maximum") == 24576
        assert aws.metric("Spawn/GPU", "GPUTemperature", dimensions, "Maximum") == 40 + index
        assert aws.metric("Spawn/GPU", "GPUPowerDraw", dimensions, "Maximum") == 60.5 + index
    absent = {"ArrayId": ARRAY, "InstanceId": INSTANCE, "GPUIndex": str(gpus)}
    assert aws.metric("Spawn/GPU", "GPUUtilization", absent, "SampleCount") == 0


def test_gpu_garbage_gives_one_clear_error_and_no_crash(
    aws: Aws, kit_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**kit_env, **fake_nvidia_smi(tmp_path / "bin", "garbage, not, csv\n")}

    result = run_kit(env, "gpu", "--every", "0", "--count", "3")

    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "spawn-report: nvidia-smi output not understood, line 1 'garbage, not, csv': 3 fields "
        "(expected 6 comma-separated fields: index, utilization.gpu, memory.used, "
        "memory.total, temperature.gpu, power.draw)"
    ]
    assert run_kit(env, "gpu", "--every", "0", "--count", "1", "--strict").returncode == 1


def test_gpu_driver_failure_is_one_line(kit_env: dict[str, str], tmp_path: Path) -> None:
    failing = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    env = {**kit_env, **fake_nvidia_smi(tmp_path / "bin", failing, status=9)}

    result = run_kit(env, "gpu", "--count", "1")

    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "spawn-report: nvidia-smi failed (exit status 9): NVIDIA-SMI has failed because it "
        "couldn't communicate with the NVIDIA driver."
    ]


def test_a_machine_without_nvidia_smi_gets_one_message(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    env = {**kit_env, "PATH": str(tmp_path / "empty")}

    optional = run_kit(env, "gpu", "--every", "60", "--optional")
    required = run_kit(env, "gpu", "--every", "60")

    assert optional.returncode == 0
    assert required.returncode == 1
    for result in (optional, required):
        assert result.stderr.splitlines() == [
            "spawn-report: nvidia-smi not found on PATH: no NVIDIA GPU driver on this machine"
        ]


def test_timed_under_strict_keeps_the_commands_own_failure(kit_env: dict[str, str]) -> None:
    unrecordable = "Op" * 200  # a metric name CloudWatch would reject

    failed = run_kit(kit_env, "timed", "--strict", unrecordable, "--", "sh", "-c", "exit 3")
    succeeded = run_kit(kit_env, "timed", "--strict", unrecordable, "--", "true")
    loose = run_kit(kit_env, "timed", unrecordable, "--", "true")

    assert (failed.returncode, succeeded.returncode, loose.returncode) == (3, 1, 0)
    for result in (failed, succeeded, loose):
        assert "must be 1-255 characters" in result.stderr
