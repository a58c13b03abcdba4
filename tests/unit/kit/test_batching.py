"""Spooled entries → the fewest AWS calls PutMetricData's limits allow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from spawn_report.batching import (
    MAX_BYTES,
    MAX_DATUMS,
    MAX_VALUES,
    due,
    latest_rows,
    metric_entry,
    metric_requests,
    values_in,
)

NOW = 1_769_508_000.0  # 2026-01-27T10:00:00Z


def point(name: str, value: float, t: float = NOW, namespace: str = "Spawn/Workers", **dims: str):
    return metric_entry(namespace, name, value, "Count", dims or {"ArrayId": "a"}, t)


def test_values_of_one_metric_and_minute_share_one_datum_with_counts() -> None:
    entries = [point("Done", 1) for _ in range(500)] + [point("Done", 2), point("Done", 1, NOW + 5)]

    [request], rejected = metric_requests(entries, NOW)

    assert rejected == 0
    [datum] = request["MetricData"]
    assert (datum["Values"], datum["Counts"]) == ([1.0, 2.0], [501.0, 1.0])
    assert datum["Timestamp"].timestamp() == NOW
    assert values_in(request) == 502


def test_one_call_per_namespace_and_a_datum_per_metric_dimensions_and_minute() -> None:
    entries = [
        point("Done", 1),
        point("Done", 1, NOW + 60),
        point("Done", 1, ArrayId="b"),
        point("GPUUtilization", 50, namespace="Spawn/GPU", GPUIndex="0"),
        point("GPUUtilization", 60, namespace="Spawn/GPU", GPUIndex="1"),
    ]

    requests, _ = metric_requests(entries, NOW + 60)

    assert [(r["Namespace"], len(r["MetricData"])) for r in requests] == [
        ("Spawn/GPU", 2),
        ("Spawn/Workers", 3),
    ]


def test_more_than_150_distinct_values_split_across_datums() -> None:
    entries = [point("Latency", float(v)) for v in range(MAX_VALUES * 2 + 1)]

    [request], _ = metric_requests(entries, NOW)

    assert [len(d["Values"]) for d in request["MetricData"]] == [MAX_VALUES, MAX_VALUES, 1]


def test_more_than_1000_metrics_split_across_requests() -> None:
    entries = [point("Done", 1, Worker=str(i)) for i in range(MAX_DATUMS + 1)]

    requests, _ = metric_requests(entries, NOW)

    assert [len(r["MetricData"]) for r in requests] == [MAX_DATUMS, 1]


def test_requests_stay_under_the_size_limit() -> None:
    long = "x" * 1000
    entries = [point("Done", 1.0, Label=f"{v}{long}", Other=long) for v in range(700)]

    requests, _ = metric_requests(entries, NOW)

    assert len(requests) == 2  # 700 datums of ~2 KB: the size splits them, not the count
    for request in requests:
        assert len(json.dumps(request, default=str)) < MAX_BYTES
    assert sum(values_in(r) for r in requests) == 700


def test_data_too_old_or_too_far_ahead_for_cloudwatch_are_counted_not_sent() -> None:
    entries = [
        point("Done", 1, NOW - 15 * 86400),
        point("Done", 1, NOW + 3 * 3600),
        point("Done", 1),
    ]

    [request], rejected = metric_requests(entries, NOW)

    assert rejected == 2
    assert values_in(request) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("AWS/EC2", "M", 1.0, "Count", {}), "not under AWS/"),
        (("Spawn/Workers", "", 1.0, "Count", {}), "metric name"),
        (("Spawn/Workers", "M", float("nan"), "Count", {}), "not a number CloudWatch accepts"),
        (("Spawn/Workers", "M", 2.0**400, "Count", {}), "not a number CloudWatch accepts"),
        (("Spawn/Workers", "M", 1.0, "Furlongs", {}), "not a CloudWatch unit"),
        (("Spawn/Workers", "M", 1.0, "Count", {f"D{i}": "v" for i in range(31)}), "31 dimensions"),
        (("Spawn/Workers", "M", 1.0, "Count", {"D": ""}), "dimension D=''"),
    ],
)
def test_what_cloudwatch_would_reject_is_refused_before_spooling(
    args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        metric_entry(*args, t=NOW)


def row_entry(index: int, stamp: str, status: str = "running", table: str = "spawn-progress"):
    row = {"array_id": "a", "task_index": index, "status": status, "last_update": stamp}
    return {"kind": "row", "t": NOW, "table": table, "row": row}


def test_only_the_newest_row_per_worker_is_written() -> None:
    entries = [
        row_entry(1, "2026-01-27T10:00:10Z"),
        row_entry(2, "2026-01-27T10:00:05Z"),
        row_entry(1, "2026-01-27T10:00:20Z"),
        row_entry(1, "2026-01-27T10:00:20Z", "completed"),  # same second: the later wins
        row_entry(1, "2026-01-27T10:00:15Z"),  # replayed from an older batch
        point("Done", 1),
    ]

    chosen = latest_rows(entries)

    assert [(r["task_index"], r["last_update"], r["status"]) for _, r in chosen] == [
        (1, "2026-01-27T10:00:20Z", "completed"),
        (2, "2026-01-27T10:00:05Z", "running"),
    ]


def test_due_once_the_oldest_entry_has_waited_long_enough() -> None:
    assert not due(None, NOW, 0)
    assert due(NOW, NOW, 0)
    assert not due(NOW - 119, NOW, 120)
    assert due(NOW - 120, NOW, 120)
