"""The one list of metrics: who publishes each one, and the series it comes in.

Dashboards, alarms, metric filters and the agent configuration name metrics only from
this list (tests check each), and `chalicelib.core.observability.emit` refuses one it
does not name as the backend's, so what is published and what is shown cannot drift.
A `Metric` is one series shape: namespace, name, dimension names (`()` fleet-wide).

Example:
    >>> is_published("Spawn/Fleet", "ActiveInstances", ())
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

BACKEND = "backend"
WORKERS = "workers"
AWS = "aws"
LOG_FILTERS = "log metric filters"

FLEET = "Spawn/Fleet"
ARRAYS = "Spawn/Arrays"
INTERRUPTIONS = "Spawn/SpotInterruptions"
WORKER_METRICS = "Spawn/Workers"
GPU = "Spawn/GPU"
PERFORMANCE = "Spawn/Performance"
LOG_METRICS = "Spawn/LogMetrics"
EC2 = "AWS/EC2"
BILLING = "AWS/Billing"
COST = "Spawn/Cost"


class UnpublishedMetric(ValueError):
    """A metric that the list does not name; the message says which and where to add it."""


@dataclass(frozen=True)
class Metric:
    """One published series shape.

    Attributes:
        namespace: the CloudWatch namespace.
        name: the metric name; `*` matches any text (spawn's guide names performance
            metrics `{Operation}Duration`).
        dimensions: the dimension names of the series, `()` for the fleet-wide one.
        unit: the CloudWatch unit it is published with.
        publisher: `backend`, `workers`, `aws` or `log metric filters`.
        meaning: what an operator reads from it.
    """

    namespace: str
    name: str
    dimensions: tuple[str, ...]
    unit: str
    publisher: str
    meaning: str

    def matches(self, namespace: str, name: str, dimensions: Iterable[str] | None) -> bool:
        """Same namespace and name; same dimension names unless `dimensions` is None."""
        if namespace != self.namespace or not fnmatchcase(name, self.name):
            return False
        return dimensions is None or sorted(dimensions) == sorted(self.dimensions)


ARRAY = ("ArrayId",)
WORKER = ("InstanceId", "ArrayIndex")
INSTANCE = ("InstanceId",)

PUBLISHED: tuple[Metric, ...] = (
    Metric(FLEET, "ActiveInstances", (), "Count", BACKEND, "running managed instances"),
    Metric(FLEET, "ActiveArrays", (), "Count", BACKEND, "arrays with a running instance"),
    Metric(FLEET, "UnhealthyInstances", (), "Count", BACKEND, "running, failing a check"),
    Metric(FLEET, "UnhealthyPercent", (), "Percent", BACKEND, "share failing a check"),
    *(
        Metric(ARRAYS, name, ARRAY, "Count", BACKEND, meaning)
        for name, meaning in (
            ("WorkersTotal", "workers in the array (declared or reported)"),
            ("WorkersRunning", "workers running"),
            ("WorkersCompleted", "workers completed"),
            ("WorkersFailed", "workers failed"),
            ("WorkersStalled", "running workers silent for STALL_AFTER_SECONDS"),
            ("TasksCompleted", "tasks completed, summed over the array's workers"),
        )
    ),
    Metric(ARRAYS, "PercentComplete", ARRAY, "Percent", BACKEND, "finished workers / total"),
    # SPEC §14: the live estimate (CloudWatch has no currency unit: USD, unit None).
    Metric(COST, "ArrayCostUSD", ARRAY, "None", BACKEND, "an array's cost so far, USD"),
    Metric(COST, "FleetCostRateUSDPerHour", (), "None", BACKEND, "the fleet's cost rate, USD/h"),
    Metric(INTERRUPTIONS, "Count", (), "Count", BACKEND, "spot interruption warnings"),
    Metric(INTERRUPTIONS, "Count", ARRAY, "Count", BACKEND, "spot interruptions per array"),
    Metric(INTERRUPTIONS, "RebalanceRecommendations", (), "Count", BACKEND, "rebalance advice"),
    # Workers (spawn's guide). The fleet-wide series (no dimension) is what the
    # error-rate and throughput alarms watch: an alarm reads one series, not a sum.
    # The kit's `progress` publishes them as increments, so a period's Sum is its tasks.
    Metric(WORKER_METRICS, "TasksCompleted", (), "Count", WORKERS, "tasks done, fleet-wide"),
    Metric(WORKER_METRICS, "ErrorCount", (), "Count", WORKERS, "task errors, fleet-wide"),
    Metric(WORKER_METRICS, "TasksCompleted", WORKER, "Count", WORKERS, "tasks done per worker"),
    Metric(WORKER_METRICS, "ErrorCount", WORKER, "Count", WORKERS, "task errors per worker"),
    Metric(WORKER_METRICS, "TaskRate", WORKER, "Count/Second", WORKERS, "a worker's task rate"),
    Metric(GPU, "GPUUtilization", INSTANCE, "Percent", WORKERS, "GPU busy share"),
    Metric(GPU, "GPUMemoryUsed", INSTANCE, "Megabytes", WORKERS, "GPU memory in use"),
    Metric(GPU, "GPUTemperature", INSTANCE, "None", WORKERS, "GPU temperature (°C)"),
    Metric(
        PERFORMANCE,
        "*Duration",
        ("Operation", "InstanceType"),
        "Milliseconds",
        WORKERS,
        "duration of one timed operation (`{Operation}Duration`)",
    ),
    # The workers' kit (`spawn-report`, kit/): besides the fleet-wide counters above,
    # `gpu` and `timed` publish these. tests/unit/kit/test_published.py checks the kit
    # against this list, both ways.
    *(
        Metric(GPU, name, ("ArrayId", "InstanceId", "GPUIndex"), unit, WORKERS, meaning)
        for name, unit, meaning in (
            ("GPUUtilization", "Percent", "GPU busy share, per GPU"),
            ("GPUMemoryUsed", "Megabytes", "GPU memory in use, per GPU"),
            ("GPUMemoryTotal", "Megabytes", "GPU memory size, per GPU"),
            ("GPUTemperature", "None", "GPU temperature (°C), per GPU"),
            ("GPUPowerDraw", "None", "GPU power draw (W), per GPU"),
        )
    ),
    Metric(
        PERFORMANCE,
        "*Duration",
        ("ArrayId", "Operation"),
        "Milliseconds",
        WORKERS,
        "duration of one `spawn-report timed` operation, per array",
    ),
    # AWS's own metrics the console reads.
    Metric(EC2, "CPUUtilization", INSTANCE, "Percent", AWS, "CPU per instance"),
    Metric(EC2, "CPUUtilization", (), "Percent", AWS, "CPU over detailed-monitoring instances"),
    Metric(EC2, "NetworkIn", INSTANCE, "Bytes", AWS, "bytes received per instance"),
    Metric(EC2, "NetworkOut", INSTANCE, "Bytes", AWS, "bytes sent per instance"),
    Metric(EC2, "StatusCheckFailed_Instance", INSTANCE, "Count", AWS, "instance check failed"),
    Metric(EC2, "StatusCheckFailed_System", INSTANCE, "Count", AWS, "system check failed"),
    Metric(BILLING, "EstimatedCharges", ("Currency",), "None", AWS, "month-to-date charges"),
    Metric(
        BILLING,
        "EstimatedCharges",
        ("ServiceName", "Currency"),
        "None",
        AWS,
        "month-to-date charges of one service",
    ),
    # Made from workers' log lines by the console's metric filters.
    Metric(LOG_METRICS, "TaskDuration", (), "Seconds", LOG_FILTERS, "task time from logs"),
    Metric(LOG_METRICS, "ErrorsByType", ("ErrorType",), "Count", LOG_FILTERS, "logged errors"),
)


def find(namespace: str, name: str, dimensions: Iterable[str] | None = None) -> list[Metric]:
    """Every listed series of that metric (any dimensions when `dimensions` is None)."""
    wanted = None if dimensions is None else tuple(dimensions)
    return [m for m in PUBLISHED if m.matches(namespace, name, wanted)]


def is_published(namespace: str, name: str, dimensions: Iterable[str] | None = None) -> bool:
    """Whether the list names that metric (with exactly those dimension names, if given)."""
    return bool(find(namespace, name, dimensions))


def has_schema(namespace: str, dimensions: Iterable[str]) -> bool:
    """Whether some listed metric comes in that namespace with exactly these dimensions."""
    wanted = sorted(dimensions)
    return any(m.namespace == namespace and sorted(m.dimensions) == wanted for m in PUBLISHED)


def check_emitted(namespace: str, units: dict[str, str], dimensions: Iterable[str]) -> None:
    """Raise `UnpublishedMetric` unless every metric (name → unit) is the backend's, in
    the list, with these dimension names and that unit."""
    shape = tuple(dimensions)
    for name, unit in units.items():
        listed = [m for m in find(namespace, name, shape) if m.publisher == BACKEND]
        if not listed or all(m.unit != unit for m in listed):
            raise UnpublishedMetric(
                f"{namespace} {name} ({unit}, dimensions {list(shape)}) is not in the "
                "published list: add it to chalicelib/contract/catalog.py"
            )
