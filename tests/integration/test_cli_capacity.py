"""`spawn-monitor capacity` as a subprocess: an API that serves `/capacity`, and EC2 on
a local moto server, which does not implement `GetSpotPlacementScores` (so the CLI
uses its labelled sample scores); the stable `--json` and the one-line advice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

SCRIPT = Path(sys.executable).parent / "spawn-monitor"
HISTORY = [
    {
        "instance_type": "c5.xlarge",
        "availability_zone": zone,
        "instance_hours": hours,
        "interruptions": interruptions,
        "interruptions_per_100h": round(100 * interruptions / hours, 3),
        "launch_failures": failures,
    }
    for zone, hours, interruptions, failures in (
        ("us-east-1a", 120.0, 6, {"InsufficientInstanceCapacity": 5}),
        ("us-east-1b", 40.0, 0, {}),
        ("us-east-1c", 300.0, 3, {"MaxSpotInstanceCountExceeded": 3}),
    )
]


@pytest.fixture
def endpoints() -> Iterator[tuple[str, str]]:
    class Capacity(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"capacity": HISTORY}).encode()
            status = 200 if self.path.startswith("/capacity") else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    api = HTTPServer(("127.0.0.1", 0), Capacity)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield f"http://127.0.0.1:{api.server_port}", f"http://{host}:{port}"
    finally:
        api.shutdown()
        moto.stop()


def run(endpoints: tuple[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    api, aws = endpoints
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_MONITOR"))},
        "SPAWN_MONITOR_ENDPOINT": api,
        "AWS_ENDPOINT_URL": aws,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    return subprocess.run(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), "capacity", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_table_ranks_zones_and_ends_with_one_line_of_advice(
    endpoints: tuple[str, str],
) -> None:
    result = run(endpoints, "--type", "c5.xlarge", "--count", "20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    zones = [line.split("│")[2].strip() for line in lines if line.count("│") > 3]
    # Sample scores (moto's zone ids): b (use1-az1) 9, a (use1-az6) 8, c (use1-az2) 7, ...
    assert zones[:3] == ["us-east-1b", "us-east-1a", "us-east-1c"]
    assert "SAMPLE scores, not EC2's" in " ".join(result.stdout.split())
    assert lines[-1] == (
        "Launch c5.xlarge in us-east-1b: placement score 9/10; 0 interruptions per 100 "
        "instance-hours over 40 h in the last 7 days."
    )


def test_json_is_the_documented_document(endpoints: tuple[str, str]) -> None:
    result = run(endpoints, "--type", "c5.xlarge", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {
        "schema_version",
        "instance_types",
        "regions",
        "target_capacity",
        "by",
        "placement_source",
        "placement_note",
        "ranked",
        "recommendation",
    }
    assert document["placement_source"] == "sample"
    assert document["regions"] == ["us-east-1"]
    first = document["ranked"][0]
    assert set(first) == {
        "rank",
        "region",
        "availability_zone",
        "availability_zone_id",
        "placement_score",
        "score_rank",
        "instance_hours",
        "interruptions",
        "interruptions_per_100h",
        "rate_rank",
        "launch_failures",
    }
    by_zone = {r["availability_zone"]: r for r in document["ranked"]}
    assert by_zone["us-east-1a"]["launch_failures"] == {"InsufficientInstanceCapacity": 5}
    assert [by_zone[z]["rate_rank"] for z in ("us-east-1b", "us-east-1c", "us-east-1a")] == [
        1,
        2,
        3,
    ]


def test_bad_arguments_are_one_line(endpoints: tuple[str, str]) -> None:
    result = run(endpoints, "--count", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "spawn-monitor: --count must be 1 or more"
