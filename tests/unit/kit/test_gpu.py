"""`nvidia-smi` CSV → one reading per GPU; anything else is one clear GpuError."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from spawn_report.exceptions import GpuError
from spawn_report.gpu import COMMAND, GpuMissing, parse, read


def test_one_gpu() -> None:
    [gpu] = parse("0, 45, 1024, 24576, 60, 70.50\n")

    assert gpu.index == 0
    assert gpu.values == {
        "GPUUtilization": 45.0,
        "GPUMemoryUsed": 1024.0,
        "GPUMemoryTotal": 24576.0,
        "GPUTemperature": 60.0,
        "GPUPowerDraw": 70.5,
    }


def test_eight_gpus_in_one_query() -> None:
    text = "".join(f"{i}, {i * 10}, 100, 200, 50, 300.0\n" for i in range(8))

    gpus = parse(text)

    assert [g.index for g in gpus] == list(range(8))
    assert [g.values["GPUUtilization"] for g in gpus] == [i * 10.0 for i in range(8)]


def test_fields_a_gpu_does_not_report_are_left_out() -> None:
    [gpu] = parse("0, 12, 300, 16384, 41, [N/A]\n")

    assert "GPUPowerDraw" not in gpu.values
    assert gpu.values["GPUTemperature"] == 41.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "listed no GPU"),
        ("garbage\n", "line 1 'garbage': 1 fields"),
        ("0, 45, 1024, 24576, 60\n", "5 fields"),
        ("x, 45, 1024, 24576, 60, 70\n", "index 'x' is not a number"),
        ("0, 45, lots, 24576, 60, 70\n", "memory.used 'lots' is not a number"),
        ("0, nan, 1, 2, 3, 4\n", "utilization.gpu 'nan' is not a number"),
        ("0, 1, 1, 2, 3, 4\n0, 1, 1, 2, 3, 4\n", "GPU 0 listed twice"),
        ("index, utilization.gpu [%], a, b, c, d\n", "index 'index' is not a number"),
    ],
)
def test_anything_else_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(GpuError, match=message.replace("[", r"\[")):
        parse(text)


def test_read_runs_the_query_once_for_every_gpu() -> None:
    calls: list[Any] = []

    def run(command: Any, **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(list(command))
        return subprocess.CompletedProcess(command, 0, "0, 1, 2, 3, 4, 5\n1, 1, 2, 3, 4, 5\n", "")

    gpus = read(run=run, which=lambda _: "/usr/bin/nvidia-smi")

    assert len(gpus) == 2
    assert calls == [["/usr/bin/nvidia-smi", *COMMAND[1:]]]
    assert COMMAND[1] == (
        "--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"
    )


def test_read_without_nvidia_smi() -> None:
    with pytest.raises(GpuMissing, match="nvidia-smi not found on PATH"):
        read(which=lambda _: None)
