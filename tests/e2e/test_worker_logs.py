"""Why a worker failed, against the local stack (issue 24's first "Must show", the kit's
half): a job run by `spawn-report run` that dies of `RuntimeError: CUDA out of memory`
has its exit code and that line in `/workers?status=failed`, and its lines are still in
its stream `{array_id}/{task_index}/{instance_id}` once its instance is terminated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract import check, response_schema
from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.e2e
SPAWN_REPORT = Path(sys.executable).parent / "spawn-report"
ARRAY = "train-20261204-c0da00"
INDEX = 3
JOB = """
import sys
print("epoch 1/3: loss 0.91")
print("epoch 2/3: loss 0.55")
def allocate(batch):
    raise RuntimeError("CUDA out of memory")
def forward(batch):
    allocate(batch)
forward(64)
"""


def test_a_worker_dead_of_cuda_oom_shows_why_in_workers_and_keeps_its_log(
    stack: Stack, tmp_path: Path
) -> None:
    ec2 = stack.client("ec2")
    [instance] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"]
    instance_id = instance["InstanceId"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_"))},
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "JOB_ARRAY_ID": ARRAY,
        "JOB_ARRAY_INDEX": str(INDEX),
        "SPAWN_INSTANCE_ID": instance_id,
        "SPAWN_HOSTNAME": "ip-10-0-0-3",
        "SPAWN_REPORT_DIR": str(tmp_path / "spool"),
        "SPAWN_REPORT_BACKGROUND": "false",
    }

    ran = subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SPAWN_REPORT), "run", "--", sys.executable, "-c", JOB],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ran.returncode == 1
    assert ran.stdout == "epoch 1/3: loss 0.91\nepoch 2/3: loss 0.55\n"
    assert ran.stderr.endswith("RuntimeError: CUDA out of memory\n")

    def failed_worker() -> dict[str, object] | None:
        status, body = stack.get(f"/arrays/{ARRAY}/workers?status=failed")
        if status != 200 or not body["workers"]:
            return None
        check(body, response_schema("/arrays/{array_id}/workers", 200))
        [worker] = body["workers"]
        return worker  # type: ignore[no-any-return]

    worker = eventually(failed_worker)
    assert worker["task_index"] == INDEX
    assert worker["exit_code"] == 1
    assert "signal" not in worker
    assert str(worker["message"]).endswith("RuntimeError: CUDA out of memory")

    ec2.terminate_instances(InstanceIds=[instance_id])
    eventually(
        lambda: (
            ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
                "State"
            ]["Name"]
            == "terminated"
        )
    )
    events = stack.client("logs").get_log_events(
        logGroupName="/aws/spawn/workers",
        logStreamName=f"{ARRAY}/{INDEX}/{instance_id}",
        startFromHead=True,
    )["events"]
    lines = [e["message"] for e in events]
    assert lines[:2] == ["epoch 1/3: loss 0.91", "epoch 2/3: loss 0.55"]
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "RuntimeError: CUDA out of memory"
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
