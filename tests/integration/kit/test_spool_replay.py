"""Nothing is lost when a reporting process dies: what it spooled, or had claimed for
sending, is replayed by the next `spawn-report` that flushes (SPEC §12)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.integration.kit.conftest import (
    ARRAY,
    INSTANCE,
    SPAWN_REPORT,
    THROTTLING,
    Aws,
    FaultProxy,
    run_kit,
    spool_lines,
)
from tests.integration.kit.test_cli_metrics import fake_nvidia_smi, gpu_lines

GPU0 = {"ArrayId": ARRAY, "InstanceId": INSTANCE, "GPUIndex": "0"}


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_samples_spooled_by_a_killed_sampler_arrive_with_the_next_flush(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path, tmp_path: Path
) -> None:
    env = {**kit_env, **fake_nvidia_smi(tmp_path / "bin", gpu_lines(2))}
    env["SPAWN_REPORT_FLUSH_SECONDS"] = "3600"
    sampler = subprocess.Popen(  # noqa: S603 - the kit's console script
        [SPAWN_REPORT, "gpu", "--every", "0.05"], env=env, stderr=subprocess.PIPE
    )
    wait_for(lambda: len(spool_lines(spool_dir)) >= 30)
    sampler.send_signal(signal.SIGKILL)  # no handler, no flush on exit
    sampler.wait()
    spooled = [e for e in spool_lines(spool_dir) if e["dimensions"] == GPU0]
    samples = sum(1 for e in spooled if e["name"] == "GPUUtilization")
    assert samples >= 3
    assert aws.metric("Spawn/GPU", "GPUUtilization", GPU0, "SampleCount") == 0

    result = run_kit(kit_env, "flush")

    assert (result.returncode, result.stderr) == (0, "")
    assert aws.metric("Spawn/GPU", "GPUUtilization", GPU0, "SampleCount") == samples
    assert spool_lines(spool_dir) == []


def test_a_batch_claimed_by_a_flush_killed_mid_send_is_replayed(
    aws: Aws,
    kit_env: dict[str, str],
    fault_proxy: tuple[FaultProxy, str],
    spool_dir: Path,
) -> None:
    for value in ("1", "2", "4"):
        assert run_kit(kit_env, "metric", "Processed", value, "--unit", "Count").returncode == 0
    proxy, url = fault_proxy
    proxy.hold = threading.Event()
    flusher = subprocess.Popen(  # noqa: S603 - the kit's console script
        [SPAWN_REPORT, "flush"], env={**kit_env, "AWS_ENDPOINT_URL": url}
    )
    assert proxy.held.wait(30), "the flush never sent its batch"
    flusher.send_signal(signal.SIGKILL)
    flusher.wait()
    # The request in flight never reaches CloudWatch; the claimed batch stays behind.
    proxy.faults["PutMetricData"] = replace(THROTTLING)
    proxy.hold.set()
    claimed = list(spool_dir.glob("sending-*.jsonl"))
    assert len(claimed) == 1
    assert not (spool_dir / "pending.jsonl").exists()
    assert aws.metric("Spawn/Workers", "Processed", {"ArrayId": ARRAY}, "SampleCount") == 0

    result = run_kit(kit_env, "flush")

    assert (result.returncode, result.stderr) == (0, "")
    assert aws.metric("Spawn/Workers", "Processed", {"ArrayId": ARRAY}) == 7
    assert list(spool_dir.glob("*.jsonl")) == []
