"""Issue 24's must-show, end to end on the local stack: after a worker's instance is
terminated, `spawn-monitor logs ARRAY INDEX` still prints its last lines; `errors` and
`watch` name it too. The log events are written with boto3 in the kit's naming
(`{array_id}/{task_index}/{instance_id}` in `/aws/spawn/workers`), as `spawn-report run`
writes them."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import Stack, eventually
from tests.e2e.test_cli import cli
from tests.e2e.test_local_stack import launch, put_ec2_event, running

pytestmark = pytest.mark.e2e
GROUP = "/aws/spawn/workers"
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "train.py", line 42, in <module>',
    "    model.fit(batch)",
    "RuntimeError: CUDA out of memory",
]


def put_log(stack: Stack, stream: str, messages: list[str]) -> None:
    logs = stack.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=GROUP)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[
            {"timestamp": now - len(messages) + n, "message": m} for n, m in enumerate(messages)
        ],
    )


def test_a_terminated_workers_last_lines_are_one_command_away(stack: Stack) -> None:
    array_id = f"logs-{datetime.now(UTC).strftime('%H%M%S')}-5e5e5e"
    tags = {"spawn:managed": "true", "spawn:job-array-id": array_id}
    [instance] = launch(stack, tags={**tags, "spawn:job-array-index": "0"})
    running(stack, instance)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.client("dynamodb").put_item(
        TableName="spawn-progress",
        Item={
            "array_id": {"S": array_id},
            "task_index": {"N": "0"},
            "status": {"S": "running"},
            "tasks_completed": {"N": "2"},
            "last_update": {"S": now},
            "instance_id": {"S": instance},
            "hostname": {"S": "ip-10-0-0-7"},
        },
    )
    put_log(stack, f"{array_id}/0/{instance}", [f"epoch {n} loss 0.{n}" for n in range(30)])
    put_log(stack, f"{array_id}/0/{instance}", TRACEBACK)
    # The instance ends while its row still says running: the worker is lost.
    stack.client("ec2").terminate_instances(InstanceIds=[instance])
    put_ec2_event(
        stack,
        "ec2-state-change-terminated.json",
        {"instance-id": instance, "state": "terminated"},
        datetime.now(UTC) + timedelta(seconds=5),
    )

    def lost() -> bool:
        status, body = stack.get(f"/arrays/{array_id}/progress")
        return status == 200 and body["workers"]["lost"] == 1

    eventually(lost, timeout=30)
    state = stack.client("ec2").describe_instances(InstanceIds=[instance])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"

    result = cli(stack, "logs", array_id, "0", "--limit", "5")

    assert result.returncode == 0, result.stderr
    printed = [line.split("  ", 1)[1] for line in result.stdout.splitlines()]
    assert printed == ["epoch 29 loss 0.29", *TRACEBACK]

    # --follow ends at once for a worker that has ended (lost), after its lines.
    followed = cli(stack, "logs", array_id, "0", "--limit", "2", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines()[-1] == f"-- worker 0 of {array_id} ended: lost"
    assert "RuntimeError: CUDA out of memory" in followed.stdout

    errors = cli(stack, "errors", array_id, "--json")
    assert errors.returncode == 0, errors.stderr
    [entry] = json.loads(errors.stdout)["errors"]
    assert (entry["task_index"], entry["instance_id"], entry["count"]) == (0, instance, 2)
    assert entry["last_message"] == "RuntimeError: CUDA out of memory"

    # watch's ending names the lost worker with its last line.
    watched = cli(stack, "watch", array_id, "--once")
    assert watched.returncode == 1, watched.stderr
    assert "CUDA out of memory" in watched.stdout
