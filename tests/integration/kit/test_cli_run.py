"""`spawn-report run -- CMD` as a worker runs it (SPEC §16), against a moto server: the
job's status and output are its own, its lines are in its stream, its row says how it
ended; with CloudWatch Logs unreachable nothing changes for the job, and what was
spooled is sent later, in order, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from spawn_report.logs import GROUP, stream_name

from tests.integration.kit.conftest import ARRAY, INSTANCE, SPAWN_REPORT, Aws, rows, run_kit

STREAM = stream_name(ARRAY, 7, INSTANCE)
OOM_JOB = """
import sys
print("epoch 1: loss 0.93")
print("loading batch 17", file=sys.stderr)
def allocate():
    raise RuntimeError("CUDA out of memory")
def train():
    allocate()
train()
"""


def messages(aws: Aws) -> list[str]:
    page = aws.client("logs").get_log_events(
        logGroupName=GROUP, logStreamName=STREAM, startFromHead=True
    )
    return [e["message"] for e in page["events"]]


def row(aws: Aws) -> dict[str, Any]:
    [item] = rows(aws)
    return item


def alone(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Bytes as they come (text mode would turn a `\r` into a newline)."""
    return subprocess.run(  # noqa: S603 - test commands
        command, capture_output=True, check=False, timeout=60, env=env
    )


def test_a_failing_job_keeps_its_status_and_output_and_its_row_and_stream_say_why(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    job = [sys.executable, "-c", OOM_JOB]

    ran = run_kit(kit_env, "run", "--", *job)
    direct = alone(*job)

    assert ran.returncode == direct.returncode == 1
    assert ran.stdout == direct.stdout.decode()
    assert ran.stderr == direct.stderr.decode()  # nothing of the kit's own
    item = row(aws)
    assert item["status"] == {"S": "failed"}
    assert item["exit_code"] == {"N": "1"}
    assert "signal" not in item
    message = item["message"]["S"]
    assert message.endswith("RuntimeError: CUDA out of memory")
    assert message.startswith("loading batch 17\nTraceback (most recent call last):")
    lines = messages(aws)
    assert lines[-1] == "RuntimeError: CUDA out of memory"
    assert "epoch 1: loss 0.93" in lines
    assert len(lines) == len(direct.stdout.splitlines()) + len(direct.stderr.splitlines())


def test_a_completed_job_records_exit_code_0_and_keeps_the_tasks_it_reported(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    job = (
        f"import subprocess; subprocess.run([{SPAWN_REPORT!r}, 'progress', '--status', "
        "'running', '--tasks', '40', '--total', '100'], check=True); print('done')"
    )

    ran = run_kit(kit_env, "run", "--", sys.executable, "-c", job)

    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "done\n", "")
    item = row(aws)
    assert item["status"] == {"S": "completed"}
    assert item["exit_code"] == {"N": "0"}
    assert item["tasks_completed"] == {"N": "40"}
    assert item["tasks_total"] == {"N": "100"}
    assert "message" not in item
    assert messages(aws) == ["done"]


def test_a_job_ended_by_a_signal_exits_128_plus_n_and_the_row_names_the_signal(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    job = "import os, signal; print('dying', flush=True); os.kill(os.getpid(), signal.SIGKILL)"

    ran = run_kit(kit_env, "run", "--", sys.executable, "-c", job)

    assert ran.returncode == 128 + signal.SIGKILL
    item = row(aws)
    assert (item["status"], item["exit_code"], item["signal"]) == (
        {"S": "failed"},
        {"N": "137"},
        {"S": "SIGKILL"},
    )


def test_sigterm_to_the_kit_reaches_the_job_and_is_recorded(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    job = "import time; print('started', flush=True); time.sleep(60)"
    process = subprocess.Popen(  # noqa: S603 - the kit's console script
        [SPAWN_REPORT, "run", "--", sys.executable, "-c", job],
        env=kit_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"started\n"
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert row(aws)["signal"] == {"S": "SIGTERM"}


def test_ctrl_c_reaches_the_job_which_ends_as_it_chooses(aws: Aws, kit_env: dict[str, str]) -> None:
    """SIGINT to the terminal's process group: the job still has Python's default
    handler (an ignored SIGINT would be inherited), dies of it, and that is recorded."""
    job = (
        "import signal, time; print(signal.getsignal(signal.SIGINT) is "
        "signal.default_int_handler, flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(  # noqa: S603 - the kit's console script
        [SPAWN_REPORT, "run", "--", sys.executable, "-c", job],
        env=kit_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"True\n"
    os.killpg(process.pid, signal.SIGINT)

    # Python ends an uncaught KeyboardInterrupt by SIGINT to itself: 128 + 2, as a shell.
    assert process.wait(timeout=30) == 128 + signal.SIGINT
    item = row(aws)
    assert (item["status"], item["signal"]) == ({"S": "failed"}, {"S": "SIGINT"})
    assert item["message"]["S"].endswith("KeyboardInterrupt")


def test_with_logs_unreachable_the_job_is_unchanged_and_the_spool_goes_later_in_order(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    job = [
        sys.executable,
        "-c",
        "import sys\nfor i in range(50): print(f'line {i}')\n"
        "sys.stdout.write('no newline\\r')\nsys.exit(3)",
    ]
    down = {
        **kit_env,
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": "http://127.0.0.1:9",
        "SPAWN_REPORT_BUDGET_SECONDS": "1",
    }

    started = time.monotonic()
    ran = alone(SPAWN_REPORT, "run", "--", *job, env=down)
    took = time.monotonic() - started
    direct = alone(*job)

    assert ran.returncode == direct.returncode == 3
    assert ran.stdout == direct.stdout
    assert took < 10, f"the job's run took {took:.1f} s with logs down"
    assert row(aws)["exit_code"] == {"N": "3"}
    assert b"log lines spooled" in ran.stderr

    flushed = run_kit(kit_env, "flush")  # the network is back
    assert flushed.returncode == 0
    again = run_kit(kit_env, "flush")
    assert again.returncode == 0

    assert messages(aws) == [f"line {i}" for i in range(50)] + ["no newline"]


def test_without_an_identity_the_job_still_runs_and_keeps_its_status(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    nobody = {k: v for k, v in kit_env.items() if k not in ("JOB_ARRAY_ID", "JOB_ARRAY_INDEX")}

    ran = alone(
        SPAWN_REPORT, "run", "--", sys.executable, "-c", "print('work'); exit(5)", env=nobody
    )

    assert (ran.returncode, ran.stdout) == (5, b"work\n")
    assert b"job output not sent to CloudWatch Logs" in ran.stderr
    assert b"Traceback" not in ran.stderr
    assert rows(aws) == []
