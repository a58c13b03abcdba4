"""Dashboards as data: `spawn-fleet` and one `spawn-array-{array_id}` per array.

Each builder returns the dashboard body as a dict (`body_json` gives the exact text
PutDashboard receives); every metric a widget names is checked against
`chalicelib.contract.catalog`, and bodies stay within CloudWatch's quotas and
`MAX_BODY_BYTES`. `array_dashboard_name` escapes array ids one-to-one. Details:
docs/operations.md. Over 400 lines: the widget builders beside the layout that places them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.contract import catalog
from chalicelib.contract.catalog import (
    ARRAYS,
    BILLING,
    COST,
    EC2,
    FLEET,
    GPU,
    INTERRUPTIONS,
    LOG_METRICS,
    PERFORMANCE,
    WORKER_METRICS,
    UnpublishedMetric,
)
from chalicelib.core.clients import BILLING_REGION

FLEET_DASHBOARD = "spawn-fleet"
ARRAY_PREFIX = "spawn-array-"
NAME_MAX = 255
MAX_WIDGETS = 500
MAX_METRICS_PER_WIDGET = 500
MAX_METRICS_PER_DASHBOARD = 2500
MAX_EXPRESSION_CHARS = 2048
MAX_BODY_BYTES = 100_000
ERROR_RATE_THRESHOLD_PERCENT = 5.0
PERCENTILES = ("p50", "p90", "p99")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_HASH_CHARS = 12


class DashboardTooLarge(ValueError):
    """A body breaks a CloudWatch limit (or this project's byte ceiling)."""


@dataclass(frozen=True)
class FleetFigures:
    """Values the fleet dashboard draws as horizontal lines next to their series."""

    unhealthy_percent: float
    daily_cost_limit_usd: float
    tasks_per_minute_floor: float


def array_dashboard_name(array_id: str) -> str:
    """`spawn-array-{array_id}` with `_`, `.` and `:` escaped one-to-one (module doc)."""
    escaped = array_id.replace("_", "__").replace(".", "_d").replace(":", "_c")
    room = NAME_MAX - len(ARRAY_PREFIX)
    if len(escaped) > room:
        digest = hashlib.sha256(array_id.encode()).hexdigest()[:_HASH_CHARS]
        escaped = f"{escaped[: room - _HASH_CHARS - 1]}-{digest}"
    return ARRAY_PREFIX + escaped


def is_owned(name: str) -> bool:
    """Dashboards the console owns: `spawn-fleet` and every `spawn-array-…`."""
    return name == FLEET_DASHBOARD or name.startswith(ARRAY_PREFIX)


def body_json(body: Mapping[str, Any]) -> str:
    """The body exactly as PutDashboard receives it (canonical, compact JSON)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


# Metric references -------------------------------------------------------------------


def _checked(namespace: str, name: str, dimensions: Iterable[str] | None) -> None:
    if not catalog.is_published(namespace, name, dimensions):
        raise UnpublishedMetric(
            f"a widget names {namespace} {name} {list(dimensions or [])}, which is not "
            "in chalicelib/contract/catalog.py"
        )


def _series(
    namespace: str, name: str, dimensions: Mapping[str, str] | None = None, **options: Any
) -> list[Any]:
    """One metric line: `[namespace, name, dim, value, ..., {options}]`."""
    dims = dict(dimensions or {})
    _checked(namespace, name, dims)
    line: list[Any] = [namespace, name]
    for key, value in dims.items():
        line += [key, value]
    return [*line, options] if options else line


def _insights(
    query_id: str,
    function: str,
    namespace: str,
    name: str,
    schema: Sequence[str] | None,
    label: str,
    *,
    group_by: str | None = None,
) -> list[Any]:
    """A Metrics Insights query over every series of a metric (in a schema, if given)."""
    _checked(namespace, name, schema)
    source = f'"{namespace}"' if schema is None else f'SCHEMA("{namespace}", {", ".join(schema)})'
    # A Metrics Insights query built from names in the published list, not SQL input.
    query = f"SELECT {function}({name}) FROM {source}"  # noqa: S608
    if group_by:
        query += f" GROUP BY {group_by}"
    return [{"expression": query, "id": query_id, "label": label}]


def _search(query_id: str, namespace: str, dimensions: Sequence[str], stat: str) -> list[Any]:
    """A SEARCH over every metric of a schema (names vary, e.g. `{Operation}Duration`)."""
    if not catalog.has_schema(namespace, dimensions):
        raise UnpublishedMetric(f"no published metric has the schema {namespace} {dimensions}")
    schema = ",".join([namespace, *dimensions])
    return [{"expression": f"SEARCH('{{{schema}}}', '{stat}', 300)", "id": query_id}]


def _math(query_id: str, expression: str, label: str) -> list[Any]:
    return [{"expression": expression, "id": query_id, "label": label}]


# Widgets -------------------------------------------------------------------------------


@dataclass
class _Grid:
    """Places widgets left to right in rows of 24 columns."""

    x: int = 0
    y: int = 0
    row_height: int = 0

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        spot = {"x": self.x, "y": self.y, "width": width, "height": height}
        self.x += width
        self.row_height = max(self.row_height, height)
        return spot


def _metric_widget(
    grid: _Grid,
    title: str,
    metrics: list[list[Any]],
    region: str,
    *,
    width: int = 8,
    stat: str = "Sum",
    period: int = 300,
    lines: Sequence[tuple[str, float]] = (),
    y_axis: Mapping[str, Any] | None = None,
    stacked: bool = False,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "metrics": metrics,
        "region": region,
        "view": "timeSeries",
        "stacked": stacked,
        "stat": stat,
        "period": period,
    }
    if lines:
        properties["annotations"] = {
            "horizontal": [{"label": label, "value": value} for label, value in lines]
        }
    if y_axis:
        properties["yAxis"] = {"left": dict(y_axis)}
    return {"type": "metric", **grid.place(width, 6), "properties": properties}


def _text(grid: _Grid, markdown: str) -> dict[str, Any]:
    return {"type": "text", **grid.place(24, 2), "properties": {"markdown": markdown}}


PERCENT_AXIS = {"min": 0, "max": 100}


def fleet_dashboard(
    region: str,
    figures: FleetFigures,
    alarm_arns: Sequence[str],
    errors_query: str,
) -> dict[str, Any]:
    """The guide's master dashboard on the metrics this system really publishes.

    Args:
        region: the deployment's region (billing widgets use `us-east-1`).
        figures: thresholds drawn beside their series.
        alarm_arns: the fleet alarms shown in the alarm-status widget.
        errors_query: the Logs Insights query of the "errors by hour" widget.
    """
    grid = _Grid()
    instance = ("InstanceId",)
    widgets = [
        _text(
            grid,
            "# spawn fleet\nMade by spawn-fleet-monitor's console setup from its description "
            "(`chalicelib/console`); changes made here are overwritten at the next setup. "
            "Per-array dashboards: `spawn-array-…`.",
        ),
        _metric_widget(
            grid,
            "Active instances and arrays",
            [_series(FLEET, "ActiveInstances"), _series(FLEET, "ActiveArrays")],
            region,
            width=6,
            stat="Maximum",
            period=60,
        ),
        _metric_widget(
            grid,
            "Fleet CPU utilization (all instances in the region)",
            [
                _insights("cpuavg", "AVG", EC2, "CPUUtilization", instance, "average"),
                _insights("cpumax", "MAX", EC2, "CPUUtilization", instance, "maximum"),
            ],
            region,
            width=6,
            stat="Average",
            y_axis=PERCENT_AXIS,
        ),
        _metric_widget(
            grid,
            "Network (all instances in the region)",
            [
                _insights("netin", "SUM", EC2, "NetworkIn", instance, "in"),
                _insights("netout", "SUM", EC2, "NetworkOut", instance, "out"),
            ],
            region,
            width=6,
        ),
        _metric_widget(
            grid,
            "Estimated charges, month to date (USD)",
            [_series(BILLING, "EstimatedCharges", {"Currency": "USD"})],
            BILLING_REGION,
            width=6,
            stat="Maximum",
            period=21600,
            lines=[("daily cost limit", figures.daily_cost_limit_usd)],
        ),
        _metric_widget(
            grid,
            "Fleet cost rate (USD per hour, live estimate)",
            [_series(COST, "FleetCostRateUSDPerHour", label="USD/h")],
            region,
            width=6,
            stat="Maximum",
            period=60,
        ),
        _metric_widget(
            grid,
            "Tasks completed (all workers)",
            [_series(WORKER_METRICS, "TasksCompleted")],
            region,
        ),
        _metric_widget(
            grid,
            "Task rate (tasks per minute)",
            [
                _series(WORKER_METRICS, "TasksCompleted", id="tasks", visible=False),
                _math("rate", "FILL(tasks, 0) * 60 / PERIOD(tasks)", "tasks per minute"),
            ],
            region,
            lines=[("throughput floor", figures.tasks_per_minute_floor)],
        ),
        _metric_widget(
            grid,
            "Error rate (% of tasks)",
            [
                _series(WORKER_METRICS, "ErrorCount", id="errors", visible=False),
                _series(WORKER_METRICS, "TasksCompleted", id="completed", visible=False),
                _math(
                    "rate",
                    "IF(completed > 0, 100 * errors / completed, 0)",
                    "errors per 100 tasks",
                ),
            ],
            region,
            lines=[("alarm", ERROR_RATE_THRESHOLD_PERCENT)],
        ),
        _metric_widget(
            grid,
            "GPU utilization",
            [
                _insights("gpuavg", "AVG", GPU, "GPUUtilization", None, "average"),
                _insights("gpumax", "MAX", GPU, "GPUUtilization", None, "maximum"),
            ],
            region,
            stat="Average",
            y_axis=PERCENT_AXIS,
        ),
        _metric_widget(
            grid,
            "GPU memory used (MB)",
            [
                _insights("memavg", "AVG", GPU, "GPUMemoryUsed", None, "average"),
                _insights("memmax", "MAX", GPU, "GPUMemoryUsed", None, "maximum"),
            ],
            region,
            stat="Average",
        ),
        _metric_widget(
            grid,
            "GPU temperature (°C)",
            [
                _insights("tempmax", "MAX", GPU, "GPUTemperature", None, "hottest"),
                _insights("tempavg", "AVG", GPU, "GPUTemperature", None, "average"),
            ],
            region,
            stat="Maximum",
        ),
        _metric_widget(
            grid,
            "Status check failures",
            [
                _insights(
                    "instance", "SUM", EC2, "StatusCheckFailed_Instance", instance, "instance"
                ),
                _insights("system", "SUM", EC2, "StatusCheckFailed_System", instance, "system"),
                _series(FLEET, "UnhealthyInstances", stat="Maximum"),
            ],
            region,
            period=60,
        ),
        _metric_widget(
            grid,
            "Unhealthy (% of running fleet)",
            [_series(FLEET, "UnhealthyPercent")],
            region,
            stat="Maximum",
            period=60,
            lines=[("spawn-fleet-unhealthy", figures.unhealthy_percent)],
            y_axis=PERCENT_AXIS,
        ),
        _metric_widget(
            grid,
            "Spot interruptions and rebalance recommendations",
            [
                _series(INTERRUPTIONS, "Count", label="interruption warnings"),
                _series(INTERRUPTIONS, "RebalanceRecommendations", label="rebalance advice"),
            ],
            region,
        ),
        *(
            _metric_widget(
                grid,
                f"Operation durations {stat} (ms, Spawn/Performance)",
                # The guide's scripts tag timings with InstanceType, `spawn-report timed`
                # with ArrayId: one SEARCH per shape, so both show.
                [
                    _search(f"guide{stat}", PERFORMANCE, ("InstanceType", "Operation"), stat),
                    _search(f"kit{stat}", PERFORMANCE, ("ArrayId", "Operation"), stat),
                ],
                region,
                stat=stat,
            )
            for stat in PERCENTILES
        ),
        {
            "type": "alarm",
            **grid.place(12, 6),
            "properties": {"title": "Fleet alarms", "alarms": list(alarm_arns)},
        },
        _metric_widget(
            grid,
            "Logged errors by type (Spawn/LogMetrics)",
            [
                _insights(
                    "bytype",
                    "SUM",
                    LOG_METRICS,
                    "ErrorsByType",
                    ("ErrorType",),
                    "errors",
                    group_by="ErrorType",
                )
            ],
            region,
            width=6,
        ),
        {
            "type": "log",
            **grid.place(6, 6),
            "properties": {
                "title": "Errors by hour (worker logs)",
                "query": errors_query,
                "region": region,
                "view": "timeSeries",
            },
        },
    ]
    return checked({"widgets": widgets})


def array_dashboard(array_id: str, region: str) -> dict[str, Any]:
    """One array: progress, workers by status, tasks, failure rate, interruptions."""
    grid = _Grid()
    of = {"ArrayId": array_id}
    widgets = [
        _text(
            grid,
            f"# Array `{array_id}`\nMade by spawn-fleet-monitor's console setup; removed a "
            "while after the array finishes (`ARRAY_DASHBOARD_RETENTION_HOURS`). Details: "
            f"`GET /arrays/{array_id}/progress`.",
        ),
        _metric_widget(
            grid,
            "Progress (% of workers finished)",
            [_series(ARRAYS, "PercentComplete", of)],
            region,
            stat="Maximum",
            period=60,
            y_axis=PERCENT_AXIS,
        ),
        _metric_widget(
            grid,
            "Workers by status",
            [
                _series(ARRAYS, name, of, label=label)
                for name, label in (
                    ("WorkersRunning", "running"),
                    ("WorkersStalled", "stalled"),
                    ("WorkersCompleted", "completed"),
                    ("WorkersFailed", "failed"),
                    ("WorkersTotal", "total"),
                )
            ],
            region,
            stat="Maximum",
            period=60,
        ),
        _metric_widget(
            grid,
            "Tasks completed",
            [_series(ARRAYS, "TasksCompleted", of)],
            region,
            stat="Maximum",
            period=60,
        ),
        _metric_widget(
            grid,
            "Failed workers (% of finished workers)",
            [
                _series(ARRAYS, "WorkersFailed", of, id="failed", visible=False),
                _series(ARRAYS, "WorkersCompleted", of, id="completed", visible=False),
                _math(
                    "rate",
                    "IF(completed + failed > 0, 100 * failed / (completed + failed), 0)",
                    "failed %",
                ),
            ],
            region,
            width=12,
            stat="Maximum",
            period=60,
            y_axis=PERCENT_AXIS,
        ),
        _metric_widget(
            grid,
            "Spot interruptions",
            [_series(INTERRUPTIONS, "Count", of)],
            region,
            width=12,
        ),
        _metric_widget(
            grid,
            "Cost so far (USD, live estimate)",
            [_series(COST, "ArrayCostUSD", of, label="USD")],
            region,
            width=12,
            stat="Maximum",
            period=60,
        ),
    ]
    return checked({"widgets": widgets})


# Limits and references --------------------------------------------------------------


def checked(body: dict[str, Any]) -> dict[str, Any]:
    """`body` if it keeps CloudWatch's dashboard limits, else `DashboardTooLarge`."""
    widgets = body["widgets"]
    if len(widgets) > MAX_WIDGETS:
        raise DashboardTooLarge(f"{len(widgets)} widgets (at most {MAX_WIDGETS})")
    total = 0
    for widget in widgets:
        count = len(widget.get("properties", {}).get("metrics", []))
        if count > MAX_METRICS_PER_WIDGET:
            raise DashboardTooLarge(f"{count} metrics in one widget")
        total += count
    if total > MAX_METRICS_PER_DASHBOARD:
        raise DashboardTooLarge(f"{total} metrics (at most {MAX_METRICS_PER_DASHBOARD})")
    for expression in _expressions(body):
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise DashboardTooLarge(f"expression of {len(expression)} characters")
    size = len(body_json(body).encode())
    if size > MAX_BODY_BYTES:
        raise DashboardTooLarge(f"{size} bytes (ceiling {MAX_BODY_BYTES})")
    return body


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def _expressions(body: Mapping[str, Any]) -> Iterator[str]:
    for widget in body.get("widgets", []):
        for line in widget.get("properties", {}).get("metrics", []):
            if line and isinstance(line[0], Mapping) and "expression" in line[0]:
                yield str(line[0]["expression"])


@dataclass(frozen=True)
class Reference:
    """A metric a widget reads; `dimensions` None means any series of it."""

    namespace: str
    name: str
    dimensions: tuple[str, ...] | None


_SELECT = re.compile(
    r'^SELECT \w+\((?P<name>\w+)\) FROM (?:"(?P<ns>[^"]+)"|SCHEMA\("(?P<schema_ns>[^"]+)"'
    r"(?P<dims>(?:, *\w+)*)\))"
)
_SEARCH = re.compile(r"^SEARCH\('\{(?P<schema>[^}]+)\}'")


def references(body: Mapping[str, Any]) -> list[Reference]:
    """Every metric the body's widgets read, parsed from the body itself (for tests and
    for whoever reads a body back from CloudWatch). SEARCH names a schema, not a metric:
    its reference has the name `*`."""
    found: list[Reference] = []
    for widget in body.get("widgets", []):
        for line in widget.get("properties", {}).get("metrics", []):
            head = line[0] if line else None
            if isinstance(head, Mapping):
                found.extend(_expression_refs(str(head.get("expression", ""))))
            elif isinstance(head, str):
                plain = [part for part in line if isinstance(part, str)]
                found.append(Reference(plain[0], plain[1], tuple(plain[2::2])))
    return found


def _expression_refs(expression: str) -> list[Reference]:
    if match := _SELECT.match(expression):
        if match["ns"]:
            return [Reference(match["ns"], match["name"], None)]
        dims = tuple(d.strip() for d in match["dims"].split(",") if d.strip())
        return [Reference(match["schema_ns"], match["name"], dims)]
    if match := _SEARCH.match(expression):
        namespace, *schema = match["schema"].split(",")
        return [Reference(namespace, "*", tuple(schema))]
    return []
