"""The local stack (`python -m local`, what `make run` starts) as a fixture.

Started once per test session in its own process, with the simulated fleet off so
tests control every event, and a short array dashboard retention. No timer runs the
scheduled functions: a test that waits (`eventually`) runs them itself through the
stack's control port, at most once a second, as a one-second tick would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    aws_endpoint: str
    api_endpoint: str
    process: subprocess.Popen[str]
    log_path: Path
    control_endpoint: str = ""
    last_tick: float = 0.0

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
        )

    def get(self, path: str) -> tuple[int, Any]:
        import urllib.error

        try:
            with urllib.request.urlopen(f"{self.api_endpoint}{path}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def log(self) -> str:
        return self.log_path.read_text()

    def run_schedule(self, name: str) -> None:
        """Run the scheduled function `name` now; returns once it has run."""
        request = urllib.request.Request(
            f"{self.control_endpoint}/schedules/{name}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200

    def tick(self) -> None:
        """One tick: every function scheduled each tick, run now, one after the other."""
        with urllib.request.urlopen(f"{self.control_endpoint}/schedules", timeout=5) as listed:
            names = json.loads(listed.read())["every_tick"]
        for name in names:
            self.run_schedule(name)
        self.last_tick = time.monotonic()


# The stacks this process started: `eventually` ticks them while it waits.
RUNNING: list[Stack] = []
TICK_SECONDS = 1.0


# The local stack shares two cores with the other test worker: a timeout is how long a
# test waits before calling something broken, not a latency target (those are measured
# in `make bench`), and a check that holds returns at once.
PATIENCE = 4.0


def put_rows(
    stack: Stack,
    array_id: str,
    rows: list[tuple[str, int, int | None, str | None]],
    message: str = "",
) -> None:
    """Progress rows as workers write them (SPEC §4), one per (status, tasks_completed,
    tasks_total or None, instance_id or None for `i-{index}`), 25 to a BatchWriteItem."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = []
    for index, (status, done, total, instance) in enumerate(rows):
        item = {
            "array_id": {"S": array_id},
            "task_index": {"N": str(index)},
            "status": {"S": status},
            "tasks_completed": {"N": str(done)},
            "last_update": {"S": now},
            "instance_id": {"S": instance or f"i-{index:017x}"},
            "hostname": {"S": f"ip-10-0-0-{index % 250}"},
        }
        if total is not None:
            item["tasks_total"] = {"N": str(total)}
        if message:
            item["message"] = {"S": message}
        items.append({"PutRequest": {"Item": item}})
    dynamodb = stack.client("dynamodb")
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={"spawn-progress": items[start : start + 25]})


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.2) -> T:
    """`check()`'s first truthy result within `timeout` seconds (times `PATIENCE`),
    else its last failure."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            failure: BaseException = AssertionError(f"still {result!r} after {timeout} s")
        except (AssertionError, OSError) as exc:  # OSError: not listening yet
            failure = exc
        if time.monotonic() > deadline:
            raise failure
        time.sleep(interval)
        # The scheduled functions run between checks, as a one-second timer would run
        # them, but only while a test waits for something.
        for stack in RUNNING:
            if time.monotonic() - stack.last_tick >= TICK_SECONDS:
                stack.tick()


@contextlib.contextmanager
def start_stack(directory: Path, **env: str) -> Iterator[Stack]:
    """Run `python -m local` (simulator off, schedules run by `eventually`) until the
    block ends."""
    aws_port, api_port, control_port = free_port(), free_port(), free_port()
    log_path = directory / "stack.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "SFM_AWS_PORT": str(aws_port),
        "SFM_API_PORT": str(api_port),
        "SFM_CONTROL_PORT": str(control_port),
        # No timer within a test's reach: `eventually` ticks (setup keeps its own pace).
        "SFM_TICK_SECONDS": "3600",
        "SFM_SIMULATE": "0",
        # A finished array's dashboard goes 3.6 s after it finishes.
        "ARRAY_DASHBOARD_RETENTION_HOURS": "0.001",
        # The reconciler leaves a launch to the lifecycle for 2 s (the grace period).
        "RECONCILE_GRACE_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = Stack(
        f"http://127.0.0.1:{aws_port}",
        f"http://127.0.0.1:{api_port}",
        process,
        log_path,
        f"http://127.0.0.1:{control_port}",
    )
    try:
        eventually(lambda: running.get("/health")[0] == 200, timeout=60, interval=0.5)
    except Exception:
        process.kill()
        raise AssertionError(f"local stack did not come up:\n{running.log()}") from None
    RUNNING.append(running)
    try:
        yield running
    finally:
        RUNNING.remove(running)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0, running.log()[-3000:]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
