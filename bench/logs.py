"""A worker's job output through `spawn-report run`: calls, bytes and the job's wall time.

The workload (issue 24): a worker writing 10,000 lines an hour. The hour runs on a
virtual clock through the kit's `LogShipper`, pumped every `TICK_SECONDS` as its
thread does, against moto in-process; `PutLogEvents` calls are counted with a botocore
`before-call` hook and the stream is read back to check every line arrived once, in
order. The overhead is real wall time: a CPU-bound job that writes the hour's 10,000
lines in about 2 s runs bare and under `spawn-report run` (against a moto server: the
final row and the last send are real calls), in `RUNS` interleaved pairs; the median
of the pairs' differences (start, tee, final row, last send) over an hour gives the
overhead, and the CPU time of the kit's own process is measured too.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import boto3
from moto import mock_aws
from moto.server import ThreadedMotoServer
from spawn_report.logs import EVENT_OVERHEAD, GROUP, TICK_SECONDS, LogShipper, stream_name

from bench.report import Figure
from local.provision import load_template, provision
from testkit.faults import count_calls

LINES = 10_000
HOUR = 3600.0
STREAM = stream_name("bench-20261204-10650f", 0, "i-0be0c0000000000000")
RUNS = 5
JOB = f"""
import sys
total = 0
for i in range({LINES}):
    for k in range(1000):
        total += k * k
    print(f"step {{i}}: loss {{total % 997 / 997:.4f}} lr 3e-4 batch 64 tokens/s 51234")
"""


def _stored(logs: Any) -> list[str]:
    messages: list[str] = []
    token: str | None = None
    while True:
        page = logs.get_log_events(
            logGroupName=GROUP,
            logStreamName=STREAM,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        messages += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


def _hour() -> tuple[dict[str, int], list[str], list[str], Any]:
    """(calls by operation, lines written, lines stored, shipper stats) of one hour."""
    start = float(int(time.time()) - int(HOUR))  # the last hour: events must be recent
    now = [start]
    with mock_aws(), tempfile.TemporaryDirectory() as spool:
        logs = boto3.client("logs", region_name="us-east-1")
        calls = count_calls(logs)
        shipper = LogShipper(
            lambda: (GROUP, STREAM),
            lambda: logs,
            Path(spool),
            clock=lambda: now[0],
            start=False,
        )
        written = []
        next_pump = start + TICK_SECONDS
        for i in range(LINES):
            now[0] = start + HOUR * (i + 1) / LINES
            while now[0] >= next_pump:
                shipper.pump()
                next_pump += TICK_SECONDS
            line = f"step {i}: loss 0.{i % 997:04d} lr 3e-4 batch 64 tokens/s 51234"
            written.append(line)
            shipper.write(line)
        stats = shipper.close()
        counted = dict(calls)
        return counted, written, _stored(logs), stats


def _wall(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


@dataclass
class Overhead:
    bare: float  # median wall seconds of the bare job
    extra: float  # median extra wall seconds with the kit, pair by pair
    extra_cpu: float  # median extra CPU seconds with the kit
    fixed: float  # median extra wall seconds with `true` as the job


def _overhead() -> Overhead:
    """The job bare and under the kit, in interleaved pairs, on real time."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = boto3.Session(region_name="us-east-1")
        table = load_template()["Resources"]["ProgressTable"]
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            provision(session, {"Resources": {"ProgressTable": table}})
        finally:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        with tempfile.TemporaryDirectory() as spool:
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
                "SPAWN_REPORT_DIR": spool,
                "SPAWN_REPORT_BACKGROUND": "false",
                "JOB_ARRAY_ID": "bench-20261204-10650f",
                "JOB_ARRAY_INDEX": "0",
                "SPAWN_INSTANCE_ID": "i-0be0c0000000000000",
                "SPAWN_HOSTNAME": "ip-10-0-0-1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            kit = [str(Path(sys.executable).parent / "spawn-report"), "run", "--"]
            job = [sys.executable, "-c", JOB]
            bare, extra, extra_cpu, fixed = [], [], [], []
            for _ in range(RUNS):
                alone, alone_cpu = _wall(job, env)
                with_kit, with_kit_cpu = _wall(kit + job, env)
                bare.append(alone)
                extra.append(with_kit - alone)
                extra_cpu.append(with_kit_cpu - alone_cpu)
                fixed.append(_wall([*kit, "true"], env)[0] - _wall(["true"], env)[0])
        return Overhead(median(bare), median(extra), median(extra_cpu), median(fixed))
    finally:
        server.stop()


def run() -> list[Figure]:
    calls, written, stored, stats = _hour()
    puts = calls.get("PutLogEvents", 0)
    written_bytes = sum(len(line.encode()) for line in written)
    ingested = stats.bytes_sent + EVENT_OVERHEAD * stats.events_sent
    lost = sum(1 for a, b in zip(written, stored, strict=False) if a != b) + abs(
        len(written) - len(stored)
    )
    figures = [
        Figure(
            f"PutLogEvents calls for an hour of {LINES:,} lines",
            puts,
            "calls/h",
            detail=f"all calls {calls}",
        ),
        Figure(
            "seconds of output per PutLogEvents call",
            HOUR / puts,
            "s/call",
            target=5.0,
            higher_is_better=True,
        ),
        Figure(
            "message bytes sent / bytes written",
            stats.bytes_sent / written_bytes,
            "x",
            detail=f"{stats.bytes_sent:,} B sent of {written_bytes:,} B written",
        ),
        Figure(
            "lines lost, duplicated or out of order (stream read back)",
            lost,
            "lines",
            target=0,
        ),
        Figure(
            "bytes CloudWatch Logs ingests (message + 26 B per event) / bytes written",
            ingested / written_bytes,
            "x",
            detail=f"{ingested:,} B for {written_bytes:,} B",
        ),
    ]
    cost = _overhead()
    figures += [
        Figure(
            f"wall time of a CPU-bound job writing {LINES:,} lines, with / without the kit",
            (cost.bare + cost.extra) / cost.bare,
            "x",
            detail=f"bare {cost.bare:.2f} s, {cost.extra:+.2f} s with spawn-report run "
            f"(medians of {RUNS} pairs)",
        ),
        Figure(
            "CPU seconds the kit spends on those lines (its process: tee, batches, calls)",
            cost.extra_cpu,
            "s",
        ),
        Figure(
            "fixed cost of spawn-report run (start, final row, last send), `true` as the job",
            cost.fixed,
            "s",
        ),
        Figure(
            f"overhead on an hour's job writing {LINES:,} lines: extra seconds / 3,600 s",
            100 * max(cost.extra, cost.fixed) / HOUR,
            "%",
            target=1.0,
            detail=f"{cost.extra:+.2f} s for the hour's lines written in {cost.bare:.1f} s, "
            f"fixed {cost.fixed:.2f} s: the larger counts",
        ),
    ]
    return figures
