"""The lines `make run` prints are all a newcomer needs: `spawn-monitor`, `doctor` and
`spawn-report` run against the local stack with nothing else set."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, eventually, free_port
from tests.e2e.test_local_stack import TAGS, alarms_of, running

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ARRAY = "lines-20260127-a1b2c3"


def printed(stack: Stack) -> dict[str, str]:
    """The variables of the `export` lines in the stack's console."""
    found: dict[str, str] = {}
    lines = [line for line in stack.log().splitlines() if line.startswith("export ")]
    assert 1 <= len(lines) <= 3, stack.log()
    for line in lines:
        for word in shlex.split(line)[1:]:
            name, _, value = word.partition("=")
            found[name] = value
    return found


def only(variables: dict[str, str], home: Path, **extra: str) -> dict[str, str]:
    """A shell with the printed lines and nothing else of AWS or spawn."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), **variables, **extra}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this checkout's console scripts
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_printed_lines_point_the_cli_and_the_kit_at_the_stack(
    stack: Stack, tmp_path: Path
) -> None:
    variables = printed(stack)
    assert variables["SPAWN_MONITOR_ENDPOINT"] == stack.api_endpoint
    assert variables["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    worker = only(
        variables,
        tmp_path,
        JOB_ARRAY_ID=ARRAY,
        JOB_ARRAY_INDEX="0",
        SPAWN_INSTANCE_ID="i-0000000000000b001",
        SPAWN_HOSTNAME="ip-10-0-0-2",
        AWS_EC2_METADATA_DISABLED="true",
        SPAWN_REPORT_BACKGROUND="false",
    )

    report = run([str(BIN / "spawn-report"), "progress", "--status", "running"], worker)
    assert (report.returncode, report.stderr) == (0, "")
    eventually(lambda: stack.get(f"/arrays/{ARRAY}/progress")[0] == 200, timeout=10)

    arrays = run([str(BIN / "spawn-monitor"), "arrays", "--json"], only(variables, tmp_path))
    assert arrays.returncode == 0, arrays.stderr
    assert ARRAY in arrays.stdout


def test_without_aws_settings_the_kit_says_where_its_reports_wait(tmp_path: Path) -> None:
    worker = only(
        {},
        tmp_path,
        JOB_ARRAY_ID=ARRAY,
        JOB_ARRAY_INDEX="0",
        SPAWN_INSTANCE_ID="i-0000000000000b001",
        SPAWN_HOSTNAME="ip-10-0-0-2",
        AWS_EC2_METADATA_DISABLED="true",
        SPAWN_REPORT_BACKGROUND="false",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    for command in (["metric", "Processed", "1"], ["progress", "--status", "running"]):
        result = run([str(BIN / "spawn-report"), *command], worker)
        assert result.returncode == 0
        [line] = result.stderr.splitlines()
        assert line.startswith("spawn-report: "), line
        assert "spool" in line, line


def test_doctor_passes_on_a_healthy_stack_with_only_the_printed_lines(
    stack: Stack, tmp_path: Path
) -> None:
    [gpu] = stack.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
        ],
    )["Instances"]
    running(stack, gpu["InstanceId"])
    eventually(lambda: len(alarms_of(stack, gpu["InstanceId"])) == 2, timeout=10)
    eventually(
        lambda: stack.client("cloudwatch").describe_alarms(AlarmNames=["spawn-fleet-unhealthy"])[
            "MetricAlarms"
        ]
    )
    # What a worker's kit publishes; no GPU metrics, an optional signal.
    stack.client("cloudwatch").put_metric_data(
        Namespace="Spawn/Workers", MetricData=[{"MetricName": "TasksCompleted", "Value": 1}]
    )

    result = run(
        [str(BIN / "spawn-monitor"), "doctor"],
        only(printed(stack), tmp_path, COLUMNS="200", NO_COLOR="1"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    [gpu_line] = [line for line in result.stdout.splitlines() if "Spawn/GPU" in line]
    assert gpu_line.lstrip().startswith("i "), gpu_line
    assert "optional" in gpu_line, gpu_line
    [alarms] = [line for line in result.stdout.splitlines() if "instance alarms" in line]
    assert alarms.startswith("✔"), alarms
    assert "they agree" not in alarms, alarms  # the old, contradictory wording


def test_doctor_with_the_stack_down_fails_its_api_check_first_and_clearly(
    tmp_path: Path,
) -> None:
    down = {
        "SPAWN_MONITOR_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    result = run(
        [str(BIN / "spawn-monitor"), "doctor"], only(down, tmp_path, COLUMNS="200", NO_COLOR="1")
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    checks = [line.split()[:2] for line in result.stdout.splitlines() if line[:1] in "✔✘!i-"]
    assert checks[:2] == [["✘", "api"], ["✘", "aws"]], result.stdout
    assert "cannot reach the API" in result.stdout
    assert f"cannot reach AWS at {down['AWS_ENDPOINT_URL']}" in result.stdout
