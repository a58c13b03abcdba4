"""`spawn-report` as a worker runs it, against the local stack: a `running` report is
in the API's view within seconds, with no flush and no background flusher."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
SPAWN_REPORT = Path(sys.executable).parent / "spawn-report"
ARRAY = "kit-live-20260127-a1b2c3"


def test_a_running_report_shows_in_progress_within_5_s_without_a_flush(
    stack: Stack, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_"))},
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "JOB_ARRAY_ID": ARRAY,
        "JOB_ARRAY_INDEX": "0",
        "SPAWN_INSTANCE_ID": "i-0000000000000a001",
        "SPAWN_HOSTNAME": "ip-10-0-0-1",
        "SPAWN_REPORT_DIR": str(tmp_path / "spool"),
        "SPAWN_REPORT_BACKGROUND": "false",  # nothing may flush it later
    }
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SPAWN_REPORT), "progress", "--status", "running", "--tasks", "3", "--total", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")

    running = 0
    while time.monotonic() - started < 5 and not running:
        status, body = stack.get(f"/arrays/{ARRAY}/progress")
        if status == 200:
            running = body["workers"]["running"]
        else:
            time.sleep(0.2)
    assert running == 1, f"not in /progress {time.monotonic() - started:.1f} s after the report"
