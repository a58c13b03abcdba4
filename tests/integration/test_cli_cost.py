"""`spawn-monitor arrays` and `watch` show cost so far, rate and projected cost against
the budget: the console script as a subprocess, against a small HTTP server answering
with bodies of the API's shape (SPEC §7, §14's `cost`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import pytest

SCRIPT = Path(sys.executable).parent / "spawn-monitor"
RUNNING = "render-20260127-a1b2c3"
DONE = "train-20260127-d4e5f6"
PLAIN = "plain-20260127-0f0f0f"


def progress(array_id: str, cost: dict[str, Any] | None, finished: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "array_id": array_id,
        "name": array_id.split("-")[0],
        "size": 10,
        "workers": {
            "total": 10,
            "pending": 0,
            "running": 0 if finished else 6,
            "completed": 10 if finished else 4,
            "failed": 0,
            "lost": 0,
            "stalled": 0,
            "invalid": 0,
        },
        "tasks_completed": 4,
        "tasks": {"completed": 4, "total": None, "percent": None, "total_estimated": False},
        "progress_basis": "workers",
        "percent_complete": 100.0 if finished else 40.0,
        "started_at": "2026-01-27T10:00:00Z",
        "updated_at": "2026-01-27T10:20:00Z",
        "finished_at": "2026-01-27T11:00:00Z" if finished else None,
        "duration_seconds": 3600 if finished else 1200,
        "eta": None if finished else "2026-01-27T10:50:00Z",
        "eta_seconds": None if finished else 1800,
        "interruptions": 0,
        "recent": [],
    }
    if cost is not None:
        body["cost"] = cost
    return body


def cost(usd: float, rate: float, projected: float | None, budget: float | None) -> dict[str, Any]:
    return {
        "usd": usd,
        "usd_per_hour": rate,
        "projected_usd": projected,
        "budget_usd": budget,
        "by_lifecycle": {"spot": usd, "on_demand": 0.0},
        "on_demand_equivalent_usd": usd * 3,
        "breakdown": {"compute": usd, "storage": 0.0, "ipv4": 0.0},
        "price_source": "spot-price-history",
        "as_of": "2026-01-27T10:20:00Z",
    }


BODIES = {
    RUNNING: progress(RUNNING, cost(9.25, 1.5, 9.95, 10.0)),
    DONE: progress(
        DONE, {**cost(3.1, 0.0, None, None), "billed_usd": 3.0, "billed_error_percent": 3.33}, True
    ),
    PLAIN: progress(PLAIN, None),
}


class Api(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        Api.seen.append(path)
        parts = path.strip("/").split("/")
        if parts == ["arrays"]:
            document: Any = {"arrays": list(BODIES.values()), "next": None}
        elif len(parts) == 3 and parts[0] == "arrays" and parts[2] == "progress":
            document = BODIES[parts[1]]
        elif len(parts) == 3 and parts[2] == "history":
            document = {"array_id": parts[1], "points": []}
        else:
            document = {"Code": "NotFoundError", "Message": path}
        body = json.dumps(document).encode()
        self.send_response(404 if "Code" in document else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_MONITOR"))},
        "SPAWN_MONITOR_ENDPOINT": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_arrays_shows_cost_rate_projected_and_budget(endpoint: str) -> None:
    result = cli(endpoint, "arrays")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if "-20260127-" in line}
    assert "cost / rate / projected / budget" in result.stdout
    assert "$9.25 $1.50/h → $9.95 / $10.00" in lines[RUNNING]
    # Finished: what it cost; no rate or projection any more.
    assert "$3.10" in lines[DONE]
    assert "/h" not in lines[DONE]
    assert lines[PLAIN].rstrip(" │").endswith("—")


def test_watch_shows_the_cost_line_and_the_bill_once_known(endpoint: str) -> None:
    running = cli(endpoint, "watch", RUNNING, "--once")
    assert running.returncode == 0, running.stderr
    assert (
        "cost $9.25 so far   rate $1.50/h   projected $9.95   budget $10.00 (92 % used)"
        in running.stdout
    )
    assert "on-demand would be $27.75" in running.stdout
    done = cli(endpoint, "watch", DONE, "--once")
    assert "cost $3.10 so far" in done.stdout
    assert "billed $3.00 (estimate +3.3 %)" in done.stdout
    assert "projected" not in done.stdout
    plain = cli(endpoint, "watch", PLAIN, "--once")
    assert plain.returncode == 0, plain.stderr
    assert "cost " not in plain.stdout
