"""What CloudWatch Logs does with Embedded Metric Format lines, for the local stack.

Handlers print EMF JSON to stdout; in AWS the log service extracts metrics from it.
Locally, `EmfStdout` replaces `sys.stdout`: each complete line that is an EMF
document becomes `PutMetricData` on the moto endpoint, every other line passes
through (Powertools' JSON log lines are shortened to something a person can read).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

MetricSink = Callable[[str, list[dict[str, Any]]], None]


def metric_data(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) pairs described by one EMF document; [] if it is not one."""
    aws = document.get("_aws")
    if not isinstance(aws, dict):
        return []
    stamp = datetime.fromtimestamp(aws.get("Timestamp", 0) / 1000, tz=UTC)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in aws.get("CloudWatchMetrics", []):
        namespace = directive["Namespace"]
        dimension_sets = directive.get("Dimensions") or [[]]
        data: list[dict[str, Any]] = []
        for dimension_keys in dimension_sets:
            dimensions = [{"Name": k, "Value": str(document[k])} for k in dimension_keys]
            for metric in directive.get("Metrics", []):
                raw = document.get(metric["Name"])
                values: list[Any] = raw if isinstance(raw, list) else [raw]
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Timestamp": stamp,
                    "Values": [float(v) for v in values],
                    "Unit": metric.get("Unit", "None"),
                }
                data.append(datum)
        out.append((namespace, data))
    return out


def readable(line: str) -> str:
    """A Powertools JSON log line as `LEVEL location: message {extra}`; others unchanged."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "level" not in record or "message" not in record:
        return line
    skip = {"level", "message", "timestamp", "service", "location", "xray_trace_id", "cold_start"}
    extra = {k: v for k, v in record.items() if k not in skip and not k.startswith("function_")}
    tail = f" {json.dumps(extra, default=str)}" if extra else ""
    return f"{record['level']:<7} {record.get('location', '')}: {record['message']}{tail}"


class EmfStdout(io.TextIOBase):
    """A stdout replacement that turns EMF lines into metrics (thread-safe per line)."""

    def __init__(self, target: TextIO, sink: MetricSink, prefix: Callable[[], str]) -> None:
        self._target = target
        self._sink = sink
        self._prefix = prefix
        self._local = threading.local()
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffer = getattr(self._local, "buffer", "") + text
        *lines, rest = buffer.split("\n")
        self._local.buffer = rest
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._target.flush()

    def _line(self, line: str) -> None:
        if line.startswith("{") and '"_aws"' in line:
            try:
                document = json.loads(line)
            except ValueError:
                document = None
            if isinstance(document, dict):
                try:
                    extracted = metric_data(document)
                except (KeyError, TypeError, ValueError) as exc:
                    # CloudWatch Logs drops a bad EMF document; the function carries on.
                    extracted = []
                    self._passthrough(f"[local] EMF document ignored: {exc!r}")
                for namespace, data in extracted:
                    self._sink(namespace, data)
                return
        self._passthrough(readable(line))

    def _passthrough(self, line: str) -> None:
        with self._lock:
            self._target.write(f"{self._prefix()}{line}\n")
            self._target.flush()
