"""What to send, and when: spooled entries → as few AWS calls as AWS allows. Pure.

Entries are plain dicts as the spool stores them:

* `{"kind": "metric", "t", "namespace", "name", "unit", "value", "dimensions"}`
* `{"kind": "row", "t", "table", "row"}` (a SPEC §4 row, already validated)

Rows are the latest state of a worker, so only the newest row per key is written.
Metrics are grouped by namespace (one `PutMetricData` each), then by metric, unit,
dimensions and minute: CloudWatch keeps standard-resolution data per minute, so values
of one minute go in one datum as `Values`/`Counts`, which is exactly what CloudWatch
would have aggregated from separate calls. Each request respects `PutMetricData`'s
limits: ≤ 1,000 datums, ≤ 150 distinct values per datum, ≤ 1 MB.

Example:
    >>> requests, stale = metric_requests(entries, now=time.time())
    >>> [r["Namespace"] for r in requests]
    ['Spawn/GPU', 'Spawn/Workers']
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

MAX_DATUMS = 1000
MAX_VALUES = 150
# 1 MB per request; the estimate below is of the JSON body, so keep a margin.
MAX_BYTES = 800_000
MAX_DIMENSIONS = 30
# CloudWatch takes data up to two weeks old and two hours ahead.
MAX_AGE_SECONDS = 14 * 24 * 3600 - 3600
MAX_AHEAD_SECONDS = 2 * 3600 - 300
# CloudWatch rejects values outside this range (other than zero).
VALUE_MAX = 2.0**360
VALUE_MIN = 2.0**-260
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)


def metric_entry(
    namespace: str,
    name: str,
    value: float,
    unit: str,
    dimensions: Mapping[str, str],
    t: float,
) -> dict[str, Any]:
    """A spool entry for one data point; ValueError says what CloudWatch would reject."""
    if not namespace or len(namespace) > 255 or namespace.startswith("AWS/"):
        raise ValueError(f"namespace {namespace!r} must be 1-255 characters, not under AWS/")
    if not name or len(name) > 255:
        raise ValueError(f"metric name {name!r} must be 1-255 characters")
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not a CloudWatch unit ({', '.join(sorted(UNITS))})")
    if not math.isfinite(value) or abs(value) > VALUE_MAX or 0 < abs(value) < VALUE_MIN:
        raise ValueError(f"value {value!r} is not a number CloudWatch accepts")
    if len(dimensions) > MAX_DIMENSIONS:
        raise ValueError(f"{len(dimensions)} dimensions; CloudWatch allows {MAX_DIMENSIONS}")
    for key, text in dimensions.items():
        if not key or len(key) > 255 or not text or len(text) > 1024:
            raise ValueError(f"dimension {key}={text!r}: name 1-255, value 1-1024 characters")
    return {
        "kind": "metric",
        "t": t,
        "namespace": namespace,
        "name": name,
        "unit": unit,
        "value": float(value),
        "dimensions": dict(dimensions),
    }


def due(oldest: float | None, now: float, flush_seconds: float) -> bool:
    """Whether what waits should be sent now: the oldest entry waited long enough."""
    return oldest is not None and now - oldest >= flush_seconds


def latest_rows(entries: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The newest row per (table, array, index), by `last_update` then by spool order."""
    newest: dict[tuple[str, str, int], tuple[str, int, dict[str, Any]]] = {}
    for order, entry in enumerate(entries):
        if entry.get("kind") != "row":
            continue
        table, row = entry.get("table"), entry.get("row")
        if not isinstance(table, str) or not isinstance(row, dict):
            continue
        key = (table, str(row.get("array_id")), int(row.get("task_index") or 0))
        stamp = str(row.get("last_update"))
        current = newest.get(key)
        if current is None or (stamp, order) >= (current[0], current[1]):
            newest[key] = (stamp, order, row)
    return [(key[0], row) for key, (_, _, row) in newest.items()]


def _datum_size(datum: Mapping[str, Any]) -> int:
    return len(json.dumps(datum, default=str)) + 2


def metric_requests(
    entries: Iterable[Mapping[str, Any]], now: float
) -> tuple[list[dict[str, Any]], int]:
    """`PutMetricData` requests for every metric entry, and how many were too old or
    too far ahead for CloudWatch (those are left out)."""
    grouped: dict[str, dict[tuple[Any, ...], Counter[float]]] = {}
    rejected = 0
    for entry in entries:
        if entry.get("kind") != "metric":
            continue
        t = float(entry["t"])
        if t < now - MAX_AGE_SECONDS or t > now + MAX_AHEAD_SECONDS:
            rejected += 1
            continue
        minute = int(t // 60) * 60
        dimensions = tuple(sorted(dict(entry["dimensions"]).items()))
        key = (entry["name"], entry["unit"], dimensions, minute)
        grouped.setdefault(entry["namespace"], {}).setdefault(key, Counter())[entry["value"]] += 1
    requests: list[dict[str, Any]] = []
    for namespace in sorted(grouped):
        datums: list[dict[str, Any]] = []
        for (name, unit, dimensions, minute), counts in sorted(grouped[namespace].items()):
            values = sorted(counts)
            for start in range(0, len(values), MAX_VALUES):
                chunk = values[start : start + MAX_VALUES]
                datums.append(
                    {
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
                        "Timestamp": datetime.fromtimestamp(minute, tz=timezone.utc),
                        "Unit": unit,
                        "Values": chunk,
                        "Counts": [float(counts[v]) for v in chunk],
                    }
                )
        batch: list[dict[str, Any]] = []
        size = 0
        for datum in datums:
            datum_size = _datum_size(datum)
            if batch and (len(batch) >= MAX_DATUMS or size + datum_size > MAX_BYTES):
                requests.append({"Namespace": namespace, "MetricData": batch})
                batch, size = [], 0
            batch.append(datum)
            size += datum_size
        if batch:
            requests.append({"Namespace": namespace, "MetricData": batch})
    return requests, rejected


def values_in(request: Mapping[str, Any]) -> int:
    """How many data points a `PutMetricData` request carries."""
    return int(sum(sum(d["Counts"]) for d in request["MetricData"]))
