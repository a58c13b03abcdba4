"""The local stack under load: a 1,000-instance launch burst while 50 API clients poll.

1. 1,000 instances in 4 arrays launch at once: EC2's `running` events go to the default
   bus (10 per `PutEvents`), every worker writes its first row, then a third of them
   complete. Meanwhile 50 concurrent clients poll, in bounded loops, half of them
   `GET /arrays/{id}/progress` and half `GET /fleet`. Latency p50 / p95 / p99 and
   throughput are measured against the same 50 clients running the guide's monitor
   loop (a Scan of the progress table filtered on one array, counted client-side) on the
   same table, in the same run.
2. Correctness holds under that load, once the burst settles: the alarm set equals the
   running managed instances, and each array's summary equals a recount of its rows.

Everything is loopback (moto server and the API on 127.0.0.1). moto has no CloudWatch
quota, so alarm pacing is raised for this run (`ALARM_API_TPS`); how the quota shapes a
burst is measured in virtual time by `bench.lifecycle`.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from bench.report import Figure

if TYPE_CHECKING:
    from chalicelib.container import Container

INSTANCES = 1000
ARRAYS = 4
CLIENTS = 50
API_REQUESTS_PER_CLIENT = 40
SCANS_PER_CLIENT = 2
# Bounded waits: for the arrays' first summaries, and for the burst to settle.
READY_SECONDS = 120
SETTLE_SECONDS = 900
AMI = "ami-12c6146b"


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())  # type: ignore[no-any-return]


def _exists(url: str) -> bool:
    try:
        _get(url)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
    return True


def _percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _clients(call: Callable[[int], Any], per_client: int) -> tuple[list[float], float, int]:
    """`CLIENTS` threads, each making `per_client` calls: latencies, wall time, errors."""
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(per_client):
            started = time.perf_counter()
            try:
                call(n * per_client + i)
            except Exception:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, time.perf_counter() - started, errors[0]


def _launch(session: boto3.Session, arrays: list[str]) -> dict[str, str]:
    """Every instance with spawn's tags; returns instance id → array id."""
    ec2: Any = session.client("ec2")
    members: dict[str, str] = {}
    size = INSTANCES // ARRAYS
    for array_id in arrays:
        for start in range(0, size, 250):
            count = min(250, size - start)
            tags = [
                {"Key": "spawn:managed", "Value": "true"},
                {"Key": "spawn:job-array-id", "Value": array_id},
                {"Key": "spawn:job-array-size", "Value": str(size)},
            ]
            reservation = ec2.run_instances(
                ImageId=AMI,
                MinCount=count,
                MaxCount=count,
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )
            members.update({i["InstanceId"]: array_id for i in reservation["Instances"]})
    return members


def _running_events(session: boto3.Session, instance_ids: list[str]) -> None:
    events: Any = session.client("events")
    now = datetime.now(UTC)
    for start in range(0, len(instance_ids), 10):
        entries = [
            {
                "Source": "aws.ec2",
                "DetailType": "EC2 Instance State-change Notification",
                "Detail": json.dumps({"instance-id": i, "state": "running"}),
                "Resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{i}"],
                "Time": now,
            }
            for i in instance_ids[start : start + 10]
        ]
        assert events.put_events(Entries=entries)["FailedEntryCount"] == 0


def _rows(session: boto3.Session, table: str, members: dict[str, str], status: str) -> None:
    dynamodb: Any = session.client("dynamodb")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    index: Counter[str] = Counter()
    items = []
    for instance_id, array_id in members.items():
        items.append(
            {
                "array_id": {"S": array_id},
                "task_index": {"N": str(index[array_id])},
                "status": {"S": status},
                "tasks_completed": {"N": "10" if status == "completed" else "1"},
                "last_update": {"S": now},
                "instance_id": {"S": instance_id},
                "hostname": {"S": f"ip-10-1-{index[array_id] // 250}-{index[array_id] % 250}"},
            }
        )
        index[array_id] += 1
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _guide_scan(dynamodb: Any, table: str, array_id: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="array_id = :a",
        ExpressionAttributeValues={":a": {"S": array_id}},
    ):
        counts.update(item["status"]["S"] for item in page["Items"])
    return counts


def run() -> list[Figure]:
    from chalicelib.container import current
    from local.stack import LocalStack, StackConfig

    # moto has no alarm quota; pacing at 3 calls/s would make this a 20-minute wait.
    os.environ["ALARM_API_TPS"] = "400"
    stack = LocalStack(StackConfig(aws_port=0, api_port=0, tick_seconds=2.0, simulate=False))
    stack.start()
    try:
        return _measure(stack, current())
    finally:
        stack.stop()


def _measure(stack: Any, runtime: Container) -> list[Figure]:
    session = boto3.Session(region_name="us-east-1")
    table = runtime.settings.progress_table
    arrays = [f"load{a}-20261127-{a:06x}" for a in range(ARRAYS)]
    members = _launch(session, arrays)
    rng = random.Random(14)

    def poll(n: int) -> dict[str, Any]:
        if n % 2:
            return _get(f"{stack.api_endpoint}/fleet")
        return _get(f"{stack.api_endpoint}/arrays/{rng.choice(arrays)}/progress")

    # The burst, with the clients polling through it.
    def launch_burst() -> None:
        _running_events(session, list(members))
        _rows(session, table, members, "running")
        _rows(session, table, dict(list(members.items())[::3]), "completed")

    burst = threading.Thread(target=launch_burst)
    _rows(session, table, dict(list(members.items())[:ARRAYS]), "running")  # arrays exist
    # An array is a 404 until its first rows are summarised (the stream, then the
    # aggregator): the clients start once every array answers, so what they measure
    # is the burst, not arrays that do not exist yet.
    ready = time.monotonic() + READY_SECONDS
    while not all(_exists(f"{stack.api_endpoint}/arrays/{a}/progress") for a in arrays):
        if time.monotonic() > ready:
            raise RuntimeError(f"arrays not summarised within {READY_SECONDS} s")
        time.sleep(1)
    burst.start()
    api_times, api_wall, api_errors = _clients(poll, API_REQUESTS_PER_CLIENT)
    burst.join()

    scanner = session.client("dynamodb", endpoint_url=stack.aws_endpoint)
    scan_times, scan_wall, scan_errors = _clients(
        lambda n: _guide_scan(scanner, table, arrays[n % ARRAYS]), SCANS_PER_CLIENT
    )
    leaked, missing, drifted, settled = _settle(stack, session, runtime, arrays, members)
    api_rate, scan_rate = len(api_times) / api_wall, len(scan_times) / scan_wall
    detail = (
        f"API p50 {statistics.median(api_times) * 1000:.0f} ms, "
        f"p95 {_percentile(api_times, 0.95) * 1000:.0f} ms, "
        f"p99 {_percentile(api_times, 0.99) * 1000:.0f} ms, {api_rate:.0f} req/s "
        f"({len(api_times)} requests, {api_errors} errors); guide's Scan p50 "
        f"{statistics.median(scan_times) * 1000:.0f} ms, "
        f"p95 {_percentile(scan_times, 0.95) * 1000:.0f} ms, "
        f"p99 {_percentile(scan_times, 0.99) * 1000:.0f} ms, {scan_rate:.1f} req/s "
        f"({len(scan_times)} Scans, {scan_errors} errors)"
    )
    return [
        Figure(
            f"{CLIENTS} clients polling during a {INSTANCES:,}-instance burst: p50 vs the guide's"
            " Scan",
            statistics.median(scan_times) / statistics.median(api_times),
            "x faster",
            target=10,
            higher_is_better=True,
            detail=detail,
        ),
        Figure(
            "  p95",
            _percentile(scan_times, 0.95) / _percentile(api_times, 0.95),
            "x faster",
        ),
        Figure(
            "  p99",
            _percentile(scan_times, 0.99) / _percentile(api_times, 0.99),
            "x faster",
        ),
        Figure("  throughput", api_rate / scan_rate, "x more requests/s"),
        Figure("  failed requests", api_errors, "requests", target=0),
        Figure(
            "alarms leaked + missing after the burst (vs running managed instances)",
            leaked + missing,
            "alarms",
            target=0,
            detail=f"leaked {leaked}, missing {missing}; settled in {settled:.0f} s",
        ),
        Figure("arrays whose summary differs from a recount", drifted, "arrays", target=0),
    ]


def _settle(
    stack: Any,
    session: boto3.Session,
    runtime: Container,
    arrays: list[str],
    members: dict[str, str],
) -> tuple[int, int, int, float]:
    """Wait until the burst is handled; then compare alarms with EC2 and each summary
    with a recount of its rows (`chalicelib.progress.summary.recount` over a Query)."""
    from chalicelib.alarms.per_instance import AlarmStore, instance_of
    from chalicelib.progress.summary import recount
    from chalicelib.progress.workers import ProgressRows

    cloudwatch = session.client("cloudwatch", endpoint_url=stack.aws_endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=stack.aws_endpoint)
    alarms = AlarmStore(cloudwatch, topic_arn="", region="us-east-1")
    rows = ProgressRows(dynamodb, runtime.settings.progress_table)
    started = time.monotonic()
    leaked = missing = drifted = 0
    while time.monotonic() - started < SETTLE_SECONDS:
        alarmed = {instance_of(name) for name in alarms.list_names()}
        leaked, missing = len(alarmed - set(members)), len(set(members) - alarmed)
        drifted = 0
        for array_id in arrays:
            shown = _get(f"{stack.api_endpoint}/arrays/{array_id}/progress")["workers"]
            counts = asdict(recount(rows.all(array_id)).counts)
            if any(shown[k] != counts[k] for k in ("running", "completed", "failed", "invalid")):
                drifted += 1
        if not leaked and not missing and not drifted:
            break
        time.sleep(2)
    return leaked, missing, drifted, time.monotonic() - started
