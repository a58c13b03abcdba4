"""GPU samples from `nvidia-smi` (SPEC §12): every GPU in one query, parsed strictly.

One `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` call reads every GPU of
the machine. Each line becomes the `Spawn/GPU` metrics of one GPU index. A field the
GPU does not report (`[N/A]`, `[Not Supported]`) is left out; anything else that is not
the CSV asked for raises `GpuError` with the offending line, never a traceback.

Example:
    >>> parse("0, 45, 1024, 24576, 60, 70.50\\n")[0].values["GPUUtilization"]
    45.0
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spawn_report.exceptions import GpuError

NAMESPACE = "Spawn/GPU"
FIELDS = (
    "index",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
)
# (metric name, unit) per queried field; names as in spawn's guide where it has one.
METRICS = {
    "utilization.gpu": ("GPUUtilization", "Percent"),
    "memory.used": ("GPUMemoryUsed", "Megabytes"),
    "memory.total": ("GPUMemoryTotal", "Megabytes"),
    "temperature.gpu": ("GPUTemperature", "None"),
    "power.draw": ("GPUPowerDraw", "None"),
}
COMMAND = ("nvidia-smi", "--query-gpu=" + ",".join(FIELDS), "--format=csv,noheader,nounits")
NOT_REPORTED = frozenset({"[n/a]", "n/a", "[not supported]", "[unknown error]"})
TIMEOUT_SECONDS = 20


class GpuMissing(GpuError):
    """No `nvidia-smi` on PATH: no NVIDIA driver on this machine."""


@dataclass(frozen=True)
class GpuReading:
    """One GPU's sample: its index and metric name → value."""

    index: int
    values: dict[str, float]


def _line_error(number: int, line: str, why: str) -> GpuError:
    shown = line if len(line) <= 120 else line[:117] + "..."
    return GpuError(
        f"nvidia-smi output not understood, line {number} {shown!r}: {why} "
        f"(expected {len(FIELDS)} comma-separated fields: {', '.join(FIELDS)})"
    )


def parse(text: str) -> list[GpuReading]:
    """Every GPU in `nvidia-smi`'s CSV output; GpuError for anything else."""
    readings: list[GpuReading] = []
    seen: set[int] = set()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise GpuError("nvidia-smi listed no GPU")
    for number, line in enumerate(lines, start=1):
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(FIELDS):
            raise _line_error(number, line, f"{len(cells)} fields")
        if not cells[0].isdigit():
            raise _line_error(number, line, f"index {cells[0]!r} is not a number")
        index = int(cells[0])
        if index in seen:
            raise _line_error(number, line, f"GPU {index} listed twice")
        seen.add(index)
        values: dict[str, float] = {}
        for field, cell in zip(FIELDS[1:], cells[1:]):
            if cell.lower() in NOT_REPORTED:
                continue
            try:
                value = float(cell)
            except ValueError:
                raise _line_error(number, line, f"{field} {cell!r} is not a number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise _line_error(number, line, f"{field} {cell!r} is not a number")
            values[METRICS[field][0]] = value
        readings.append(GpuReading(index, values))
    return readings


def read(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> list[GpuReading]:
    """Sample every GPU once. GpuMissing without `nvidia-smi`; GpuError when it fails."""
    executable = which(COMMAND[0])
    if executable is None:
        raise GpuMissing("nvidia-smi not found on PATH: no NVIDIA GPU driver on this machine")
    command: Sequence[str] = (executable, *COMMAND[1:])
    try:
        done = run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuError(f"nvidia-smi could not run: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip().splitlines()
        reason = said[0] if said else "no output"
        raise GpuError(f"nvidia-smi failed (exit status {done.returncode}): {reason}")
    return parse(done.stdout)
