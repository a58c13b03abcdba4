"""Array progress at size, on the local stack: 10 arrays x 10,000 workers in the table.

1. `GET /arrays/{id}/progress` latency for a 10,000-worker array against the guide's
   way of answering the same question (a Scan of the table filtered on `array_id`,
   counted client-side), both measured here, in this run.
2. DynamoDB items read per progress request, for a 10,000-worker and a 10-worker
   array (the target: the same, whatever the size).
3. DynamoDB items read by the aggregation (stream batches and the next tick) when 1 %
   of the rows change, against the table's size.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from bench.report import Figure

if TYPE_CHECKING:
    from chalicelib.container import Container

ARRAYS = 10
WORKERS = 10_000
SMALL = 10
CHANGED = WORKERS * ARRAYS // 100
API_SAMPLES = 200
SCAN_SAMPLES = 5


def _rows(array_id: str, count: int, status: str = "running") -> list[dict[str, Any]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "array_id": {"S": array_id},
            "task_index": {"N": str(i)},
            "status": {"S": status},
            "tasks_completed": {"N": str(i % 50)},
            "last_update": {"S": now},
            "instance_id": {"S": f"i-{i:017x}"},
            "hostname": {"S": f"ip-10-0-{i // 250}-{i % 250}"},
        }
        for i in range(count)
    ]


def _write(dynamodb: Any, table: str, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 25):
        request = {table: [{"PutRequest": {"Item": r}} for r in rows[start : start + 25]]}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local stack
        return json.loads(response.read())  # type: ignore[no-any-return]


def _timed(call: Callable[[], Any], samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _guide_way(dynamodb: Any, table: str, array_id: str) -> Counter[str]:
    """The guide's monitor loop: Scan the whole table filtered on the array, count."""
    counts: Counter[str] = Counter()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="array_id = :a",
        ExpressionAttributeValues={":a": {"S": array_id}},
    ):
        counts.update(item["status"]["S"] for item in page["Items"])
    return counts


class ItemsRead:
    """Counts the DynamoDB items a client's responses carried, by operation."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("after-call.dynamodb", self._count)

    def _count(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if "Items" in parsed:
            n = len(parsed["Items"])
        elif "Responses" in parsed:
            n = sum(len(v) for v in parsed["Responses"].values())
        else:
            n = 1 if "Item" in parsed else 0
        with self._lock:
            self.counts[model.name] += n

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


def run() -> list[Figure]:
    from chalicelib.container import current
    from local.stack import LocalStack, StackConfig

    stack = LocalStack(StackConfig(aws_port=0, api_port=0, tick_seconds=2.0, simulate=False))
    stack.start()
    try:
        return _measure(stack, current())
    finally:
        stack.stop()


def _measure(stack: Any, runtime: Container) -> list[Figure]:
    session = boto3.Session(region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=stack.aws_endpoint)
    table = runtime.settings.progress_table
    arrays = [f"bench{a}-20261126-{a:06x}" for a in range(ARRAYS)]
    small = "small-20261126-000000"
    started = time.monotonic()
    for array_id in arrays:
        _write(dynamodb, table, _rows(array_id, WORKERS))
    _write(dynamodb, table, _rows(small, SMALL))
    loaded = time.monotonic() - started

    def progress(array_id: str) -> dict[str, Any]:
        return _get(f"{stack.api_endpoint}/arrays/{array_id}/progress")

    def caught_up(array_id: str, reported: int, completed: int = 0) -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            workers = progress(array_id)["workers"] if _known(stack, array_id) else None
            if (
                workers
                and workers["total"] - workers["pending"] == reported
                and workers["completed"] >= completed
            ):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{array_id} did not catch up")

    for array_id in arrays:
        caught_up(array_id, WORKERS)
    caught_up(small, SMALL)
    aggregated = time.monotonic() - started

    big = arrays[0]
    reads = ItemsRead(runtime.clients.dynamodb)
    before = reads.total()
    progress(big)
    big_reads = reads.total() - before
    before = reads.total()
    progress(small)
    small_reads = reads.total() - before

    api_times = _timed(lambda: progress(big), API_SAMPLES)
    scan_times = _timed(lambda: _guide_way(dynamodb, table, big), SCAN_SAMPLES)
    assert _guide_way(dynamodb, table, big)["running"] == progress(big)["workers"]["running"]

    # 1 % of all rows change: that many workers of one array complete.
    time.sleep(3)  # let a tick pass so only the change's own reads are counted
    before = reads.total()
    changed = _rows(big, CHANGED, status="completed")
    _write(dynamodb, table, changed)
    caught_up(big, WORKERS, completed=CHANGED)
    time.sleep(2.5)  # and the tick after it
    change_reads = reads.total() - before

    api_median, scan_median = statistics.median(api_times), statistics.median(scan_times)
    return [
        Figure(
            "GET /progress median vs the guide's Scan (10,000-worker array, 100,010 rows)",
            scan_median / api_median,
            "x faster",
            target=20,
            higher_is_better=True,
            detail=f"API median {api_median * 1000:.1f} ms, p99 {_p99(api_times) * 1000:.1f} ms; "
            f"Scan median {scan_median * 1000:.0f} ms, p99 {_p99(scan_times) * 1000:.0f} ms",
        ),
        Figure(
            "  p99 ratio",
            _p99(scan_times) / _p99(api_times),
            "x faster",
        ),
        Figure(
            "items read per progress request, 10,000-worker array",
            big_reads,
            "items",
            target=small_reads,
            detail=f"10-worker array: {small_reads} items",
        ),
        Figure(
            f"table items read by the aggregation when 1 % of rows change ({CHANGED} rows; "
            "their stream records are delivered once each)",
            change_reads / CHANGED,
            "items/changed row",
            target=1.0,
            detail=f"{change_reads} items read vs {ARRAYS * WORKERS + SMALL} rows in the table "
            f"({change_reads / (ARRAYS * WORKERS + SMALL):.3%} of it)",
        ),
        Figure(
            "  (setup) rows loaded and aggregated", aggregated, "s", detail=f"load {loaded:.0f} s"
        ),
    ]


def _known(stack: Any, array_id: str) -> bool:
    try:
        _get(f"{stack.api_endpoint}/arrays/{array_id}/progress")
    except urllib.error.HTTPError:
        return False
    return True
