"""`spawn-monitor logs` and `errors` as operators run them: the console script, as a
subprocess, against a small HTTP server answering the §16 routes with bodies the
OpenAPI document accepts (the real routes are tested on moto, and end to end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from spawn_monitor.logs import Follower, since_time
from tests.contract import check, response_schema

SCRIPT = Path(sys.executable).parent / "spawn-monitor"
LOGS = "/arrays/a-1/workers/3/logs"


def line(second: int, message: str) -> dict[str, str]:
    return {"at": f"2026-12-04T02:00:{second:02d}Z", "message": message}


class FakeApi(BaseHTTPRequestHandler):
    """The logs of worker 3 of a-1: it prints a line per request until it fails."""

    requests: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []
    polls_until_failed = 3

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        FakeApi.requests.append((url.path, query))
        served = sum(1 for path, _ in FakeApi.requests if path == LOGS)
        if url.path == LOGS:
            lines = [line(s, f"line {s}") for s in range(served + 1)]
            if "since" in query:
                since = query["since"][0]
                lines = [entry for entry in lines if entry["at"] >= since]
            if query.get("grep"):
                lines = [entry for entry in lines if query["grep"][0] in entry["message"]]
            limit = int(query.get("limit", ["100"])[0])
            status = "failed" if served > self.polls_until_failed else "running"
            body: Any = {"lines": lines[-limit:], "next": None, "status": status}
            template = "/arrays/{array_id}/workers/{task_index}/logs"
        elif url.path == "/arrays/a-1/errors":
            body = {
                "errors": [
                    {
                        "task_index": 3,
                        "instance_id": "i-0abc",
                        "count": 7,
                        "last_message": "RuntimeError: CUDA out of memory",
                    }
                ],
                "workers_with_errors": 1,
                "scanned": {
                    "from": "2026-12-03T02:00:00Z",
                    "to": "2026-12-04T02:00:00Z",
                    "complete": True,
                },
            }
            template = "/arrays/{array_id}/errors"
        else:
            body, template = {"Code": "NotFoundError", "Message": "array nope is unknown"}, ""
        status_code = 200 if template else 404
        if template:
            check(body, response_schema(template, 200))
        data = json.dumps(body).encode()
        self.send_response(status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def endpoint() -> Iterator[str]:
    FakeApi.requests = []
    server = HTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_MONITOR"))}
    env.update(COLUMNS="120", NO_COLOR="1", AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), "--endpoint", endpoint, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_logs_prints_the_newest_lines_oldest_first(endpoint: str) -> None:
    result = cli(endpoint, "logs", "a-1", "3", "--limit", "2", "--grep", "line")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-12-04T02:00:00Z  line 0",
        "2026-12-04T02:00:01Z  line 1",
    ]
    [(_, query)] = FakeApi.requests
    assert (query["limit"], query["grep"]) == (["2"], ["line"])


def test_logs_follow_prints_each_new_line_once_until_the_worker_ends(endpoint: str) -> None:
    result = cli(endpoint, "logs", "a-1", "3", "--follow", "--since", "2026-12-04T01:00:00Z")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    messages = [p.split("  ", 1)[1] for p in printed[:-1]]
    assert messages == [f"line {s}" for s in range(len(messages))]
    assert len(messages) >= 4
    assert printed[-1] == "-- worker 3 of a-1 ended: failed"
    # Each poll asks only for lines since the last one printed.
    polls = [q for path, q in FakeApi.requests if path == LOGS][1:]
    assert all(q["since"][0].startswith("2026-12-04T02:00:") for q in polls)


def test_errors_prints_counts_per_worker(endpoint: str) -> None:
    result = cli(endpoint, "errors", "a-1")
    assert result.returncode == 0, result.stderr
    assert "i-0abc" in result.stdout
    assert "7" in result.stdout
    assert "CUDA out of memory" in result.stdout
    as_json = cli(endpoint, "errors", "a-1", "--json")
    assert json.loads(as_json.stdout)["errors"][0]["count"] == 7


def test_errors_of_an_unknown_array_is_one_line(endpoint: str) -> None:
    result = cli(endpoint, "errors", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == "spawn-monitor: array nope is unknown (404)"


def test_a_bad_since_is_one_line(endpoint: str) -> None:
    result = cli(endpoint, "logs", "a-1", "3", "--since", "yesterday")
    assert result.returncode == 2
    assert "--since must be a duration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_since_durations_count_back_from_now() -> None:
    now = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    assert since_time("90s", now) == "2026-12-04T01:58:30Z"
    assert since_time("2d", now) == "2026-12-02T02:00:00Z"
    assert since_time("2026-12-04T01:00:00Z", now) == "2026-12-04T01:00:00Z"
    assert since_time(None, now) is None


def test_the_follower_skips_lines_already_printed_at_the_same_millisecond() -> None:
    import io

    out = io.StringIO()
    follower = Follower(out)
    follower.print([line(1, "a"), line(2, "b"), line(2, "c")])
    fresh = follower.fresh([line(2, "b"), line(2, "c"), line(2, "c"), line(3, "d")])
    assert [entry["message"] for entry in fresh] == ["c", "d"]
