"""The workers' kit as workers run it: `spawn-report` as a subprocess, against a moto
server provisioned from `infra/resources.json`, with AWS faults injected at the HTTP
layer by a proxy in front of it and a fake instance metadata service (IMDSv2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.provision import load_template, provision

SPAWN_REPORT = str(Path(sys.executable).parent / "spawn-report")
ARRAY = "render-20260127-a1b2c3"
INSTANCE = "i-0123456789abcdef0"
HOSTNAME = "ip-10-0-0-7.ec2.internal"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Aws:
    endpoint: str
    session: boto3.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    def metric(
        self,
        namespace: str,
        name: str,
        dimensions: dict[str, str],
        stat: str = "Sum",
    ) -> float:
        """The statistic over the last half hour (moto keeps what it was sent)."""
        now = datetime.now(UTC)
        response = self.client("cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": name,
                            # In moto's order (by name): moto 5.2.5 matches dimension
                            # lists with `sorted()` over a `Dimension.__lt__` that compares
                            # a value with a name, so another order can match nothing.
                            "Dimensions": [
                                {"Name": k, "Value": dimensions[k]} for k in sorted(dimensions)
                            ],
                        },
                        "Period": 3600,
                        "Stat": stat,
                    },
                }
            ],
            StartTime=now - timedelta(minutes=30),
            EndTime=now + timedelta(minutes=5),
        )
        return float(sum(response["MetricDataResults"][0]["Values"]))

    def fleet_wide(self, name: str, stat: str = "Sum") -> float:
        """`Spawn/Workers` `name` of the fleet-wide series (no dimension), as the fleet
        alarms read it. moto answers a query without dimensions with every series of
        the name summed, so this first checks the fleet-wide series is the only one
        (moto lists it once per datum)."""
        listed = self.client("cloudwatch").list_metrics(Namespace="Spawn/Workers", MetricName=name)
        assert all(m["Dimensions"] == [] for m in listed["Metrics"]), listed["Metrics"]
        return self.metric("Spawn/Workers", name, {}, stat)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    ).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = boto3.Session(region_name="us-east-1")
    # Only what workers touch: the progress table, as `infra/resources.json` defines it.
    table = load_template()["Resources"]["ProgressTable"]
    provision(session, {"Resources": {"ProgressTable": table}})
    return Aws(moto_endpoint, session)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def kit_env(aws: Aws, spool_dir: Path) -> dict[str, str]:
    """A worker's environment: spawn's identity variables, the local endpoint, no
    instance metadata, and no background flusher unless a test asks for one."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "SPAWN_REPORT_DIR": str(spool_dir),
        "SPAWN_REPORT_BACKGROUND": "false",
        "JOB_ARRAY_ID": ARRAY,
        "JOB_ARRAY_INDEX": "7",
        "SPAWN_INSTANCE_ID": INSTANCE,
        "SPAWN_HOSTNAME": HOSTNAME,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def run_kit(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`spawn-report ARGS...` as a worker's script runs it."""
    return subprocess.run(  # noqa: S603 - the kit's console script, test arguments
        [SPAWN_REPORT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rows(aws: Aws) -> list[dict[str, Any]]:
    return aws.client("dynamodb").scan(TableName="spawn-progress")["Items"]  # type: ignore[no-any-return]


# --- faults at the HTTP layer ----------------------------------------------------------


@dataclass
class Fault:
    status: int
    body: bytes
    headers: dict[str, str]
    times: int | None  # None: every call


THROTTLING = Fault(
    400,
    b'{"__type": "Throttling", "message": "Rate exceeded"}',
    {"x-amzn-query-error": "Throttling;Sender", "Content-Type": "application/x-amz-json-1.0"},
    None,
)
UNAVAILABLE = Fault(
    503,
    b'{"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",'
    b' "message": "Service unavailable"}',
    {"Content-Type": "application/x-amz-json-1.0"},
    None,
)


@dataclass
class FaultProxy:
    """An HTTP proxy in front of moto that answers chosen operations with AWS errors.

    The kit's botocore sees real HTTP responses, so its parsing and our retry logic
    handle them exactly as they would AWS's. `seen` counts attempts per operation.
    """

    upstream: str
    faults: dict[str, Fault] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    hold: threading.Event | None = None
    held: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, operation: str) -> Fault | None:
        with self.lock:
            self.seen[operation] = self.seen.get(operation, 0) + 1
            fault = self.faults.get(operation)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    return None
            return fault


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
            if proxy.hold is not None and operation == "PutMetricData":
                proxy.held.set()
                proxy.hold.wait(30)
            fault = proxy.answer(operation)
            if fault is not None:
                self._reply(fault.status, fault.headers, fault.body)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            request = urllib.request.Request(
                proxy.upstream + self.path, data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request) as response:
                    self._reply(response.status, dict(response.headers), response.read())
            except urllib.error.HTTPError as error:
                self._reply(error.code, dict(error.headers), error.read())

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def fault_proxy(aws: Aws) -> Iterator[tuple[FaultProxy, str]]:
    proxy = FaultProxy(aws.endpoint)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    if proxy.hold is not None:
        proxy.hold.set()
    server.shutdown()
    server.server_close()


# --- a fake instance metadata service ----------------------------------------------------


@dataclass
class Imds:
    """IMDSv2 as EC2 serves it: a token by PUT, then GETs that must carry it."""

    paths: dict[str, str]
    token: str = "imds-token-1"
    requests: list[str] = field(default_factory=list)
    refused: int = 0


def _imds_handler(imds: Imds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, text: str = "") -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            imds.requests.append(f"PUT {self.path}")
            if self.path != "/latest/api/token" or not self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"
            ):
                self._send(400)
                return
            self._send(200, imds.token)

        def do_GET(self) -> None:
            imds.requests.append(f"GET {self.path}")
            if self.headers.get("X-aws-ec2-metadata-token") != imds.token:
                imds.refused += 1
                self._send(401)  # IMDSv1 (no token) is off, as spawn launches instances
                return
            prefix = "/latest/meta-data/"
            path = self.path[len(prefix) :] if self.path.startswith(prefix) else None
            text = imds.paths.get(path) if path is not None else None
            if text is None:
                self._send(404)
            else:
                self._send(200, text)

    return Handler


@pytest.fixture
def imds() -> Iterator[tuple[Imds, str]]:
    service = Imds(paths={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _imds_handler(service))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def spool_lines(spool_dir: Path) -> list[dict[str, Any]]:
    """Every entry waiting in the spool (pending and claimed files)."""
    found: list[dict[str, Any]] = []
    for path in sorted(spool_dir.glob("*.jsonl")):
        found.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return found
