"""Described vs existing → the exact write calls, in a safe order (pure).

Ownership keeps setup off anyone else's resources (owned dashboards, marked alarms,
detectors on `Spawn/*`, `spawn-*` filters, `spawn/*` queries; log groups never deleted).
Writes go children first and deletions parents first, never deleting an alarm a
remaining composite names; something already as described gets no call. Details:
docs/operations.md ("What setup owns").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.alarms.per_instance import DELETE_ALARMS_MAX_NAMES
from chalicelib.console.alarms import AlarmSpec, DetectorSpec, children_of, owns
from chalicelib.console.description import Console
from chalicelib.console.logs import FILTER_PREFIX, QUERY_PREFIX, LogGroup, MetricFilter, SavedQuery
from chalicelib.core.batching import chunked

DELETE_DASHBOARDS_MAX_NAMES = 100
OWNED_DETECTOR_NAMESPACE = "Spawn/"
LOGS = "logs"
IGNORED_ALARM_KEYS = frozenset({"Tags"})


def cloudwatch(region: str) -> str:
    """The target name of a region's CloudWatch client."""
    return f"cloudwatch:{region}"


@dataclass(frozen=True)
class Call:
    """One write: which client, which API, the exact request, and what it is about."""

    target: str
    operation: str
    params: Mapping[str, Any]
    subject: str


@dataclass(frozen=True)
class ExistingAlarm:
    """An alarm as DescribeAlarms returned it."""

    described: Mapping[str, Any]
    composite: bool = False


@dataclass
class Existing:
    """What exists now. `None` means "not read" (the endpoint lacks that API)."""

    dashboards: dict[str, str | None] = field(default_factory=dict)
    alarms: dict[str, dict[str, ExistingAlarm]] = field(default_factory=dict)
    detectors: dict[str, list[Mapping[str, Any]] | None] = field(default_factory=dict)
    log_groups: dict[str, int | None] = field(default_factory=dict)
    metric_filters: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)
    queries: list[Mapping[str, Any]] | None = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """The calls to make, in order, and alarms kept because a composite still names them."""

    calls: tuple[Call, ...]
    held: tuple[str, ...] = ()


def same(wanted: Any, found: Any) -> bool:
    """Whether `found` (as AWS describes it) already is `wanted` (as we request it).

    Only keys we set are compared; AWS leaves out empty lists, so a missing key equals
    an empty one. Dimensions compare by name and action lists as sets; numbers as
    numbers (5 and 5.0).
    """
    if isinstance(wanted, Mapping):
        if not isinstance(found, Mapping):
            return False
        return all(
            same(value, found.get(key, [] if isinstance(value, list) else None))
            for key, value in wanted.items()
            if key not in IGNORED_ALARM_KEYS
        )
    if isinstance(wanted, list):
        if not isinstance(found, list) or len(wanted) != len(found):
            return False
        return all(same(w, f) for w, f in zip(_ordered(wanted), _ordered(found), strict=True))
    if isinstance(wanted, bool) or isinstance(found, bool):
        return wanted is found
    if isinstance(wanted, int | float) and isinstance(found, int | float):
        return float(wanted) == float(found)
    return bool(wanted == found)


def _ordered(items: list[Any]) -> list[Any]:
    if all(isinstance(i, str) for i in items):
        return sorted(items)
    if all(isinstance(i, Mapping) and "Name" in i and "Value" in i for i in items):
        return sorted(items, key=lambda d: (d["Name"], d["Value"]))
    return items


# Logs ---------------------------------------------------------------------------------


def log_calls(
    groups: Sequence[LogGroup],
    filters: Sequence[MetricFilter],
    queries: Sequence[SavedQuery],
    existing: Existing,
) -> list[Call]:
    calls: list[Call] = []
    for group in groups:
        if group.name not in existing.log_groups:
            calls.append(Call(LOGS, "CreateLogGroup", {"logGroupName": group.name}, group.name))
        if existing.log_groups.get(group.name) != group.retention_days:
            calls.append(
                Call(
                    LOGS,
                    "PutRetentionPolicy",
                    {"logGroupName": group.name, "retentionInDays": group.retention_days},
                    group.name,
                )
            )
    described = {(f.group, f.name) for f in filters}
    for spec in filters:
        found = existing.metric_filters.get(spec.group, {}).get(spec.name)
        if found is None or not _same_filter(spec, found):
            calls.append(
                Call(
                    LOGS,
                    "PutMetricFilter",
                    {
                        "logGroupName": spec.group,
                        "filterName": spec.name,
                        "filterPattern": spec.pattern,
                        "metricTransformations": [dict(spec.transformation)],
                    },
                    f"{spec.group} {spec.name}",
                )
            )
    for group_name in sorted({g.name for g in groups}):
        for name in sorted(existing.metric_filters.get(group_name, {})):
            if name.startswith(FILTER_PREFIX) and (group_name, name) not in described:
                calls.append(
                    Call(
                        LOGS,
                        "DeleteMetricFilter",
                        {"logGroupName": group_name, "filterName": name},
                        f"{group_name} {name}",
                    )
                )
    return calls + query_calls(queries, existing.queries or [])


TRANSFORMATION_KEYS = ("metricName", "metricNamespace", "metricValue", "unit", "dimensions")


def _same_filter(spec: MetricFilter, found: Mapping[str, Any]) -> bool:
    transformations = found.get("metricTransformations") or [{}]
    current = transformations[0]
    if found.get("filterPattern") != spec.pattern or len(transformations) != 1:
        return False
    if "defaultValue" in current and "defaultValue" not in spec.transformation:
        return False
    return all(same(spec.transformation.get(k), current.get(k)) for k in TRANSFORMATION_KEYS)


def query_calls(queries: Sequence[SavedQuery], existing: Sequence[Mapping[str, Any]]) -> list[Call]:
    """Create or update each saved query (matched by name); delete duplicates and
    `spawn/` queries no longer described."""
    calls: list[Call] = []
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for found in existing:
        by_name.setdefault(str(found.get("name")), []).append(found)
    unwanted: list[Mapping[str, Any]] = []
    for spec in queries:
        request: dict[str, Any] = {
            "name": spec.name,
            "queryString": spec.query,
            "logGroupNames": list(spec.groups),
        }
        matches = by_name.pop(spec.name, [])
        if not matches:
            calls.append(Call(LOGS, "PutQueryDefinition", request, spec.name))
            continue
        first, *extra = matches
        unwanted += extra
        groups = sorted(first.get("logGroupNames") or [])
        if first.get("queryString") != spec.query or groups != sorted(spec.groups):
            request["queryDefinitionId"] = first["queryDefinitionId"]
            calls.append(Call(LOGS, "PutQueryDefinition", request, spec.name))
    unwanted += [
        q for name, found in by_name.items() if name.startswith(QUERY_PREFIX) for q in found
    ]
    return calls + [
        Call(
            LOGS,
            "DeleteQueryDefinition",
            {"queryDefinitionId": found["queryDefinitionId"]},
            str(found.get("name")),
        )
        for found in unwanted
    ]


# Alarms and detectors ---------------------------------------------------------------


def detector_key(metric: Mapping[str, Any]) -> tuple[Any, ...]:
    dimensions = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions") or []))
    return (metric.get("Namespace"), metric.get("MetricName"), dimensions, metric.get("Stat"))


def _detector_metric(found: Mapping[str, Any]) -> Mapping[str, Any]:
    single = found.get("SingleMetricAnomalyDetector")
    return single if isinstance(single, Mapping) else found


def detector_puts(wanted: Sequence[DetectorSpec], existing: Existing) -> list[Call]:
    calls = []
    for spec in wanted:
        found = existing.detectors.get(spec.region) or []
        if detector_key(spec.metric) not in {detector_key(_detector_metric(d)) for d in found}:
            calls.append(
                Call(
                    cloudwatch(spec.region),
                    "PutAnomalyDetector",
                    {"SingleMetricAnomalyDetector": dict(spec.metric)},
                    f"{spec.metric['Namespace']} {spec.metric['MetricName']}",
                )
            )
    return calls


def detector_deletes(wanted: Sequence[DetectorSpec], existing: Existing) -> list[Call]:
    keep = {(spec.region, detector_key(spec.metric)) for spec in wanted}
    calls = []
    for region, found in sorted(existing.detectors.items()):
        for detector in found or []:
            metric = _detector_metric(detector)
            namespace = str(metric.get("Namespace", ""))
            if namespace.startswith(OWNED_DETECTOR_NAMESPACE) and (
                (region, detector_key(metric)) not in keep
            ):
                request = {
                    key: metric[key]
                    for key in ("Namespace", "MetricName", "Dimensions", "Stat")
                    if key in metric
                }
                calls.append(
                    Call(
                        cloudwatch(region),
                        "DeleteAnomalyDetector",
                        {"SingleMetricAnomalyDetector": request},
                        f"{namespace} {metric.get('MetricName')}",
                    )
                )
    return calls


def alarm_calls(wanted: Sequence[AlarmSpec], existing: Existing) -> tuple[list[Call], list[str]]:
    """Puts (metric alarms, then composites), then deletions; and the alarms held."""
    puts: list[Call] = []
    for spec in sorted(wanted, key=lambda s: s.composite):
        found = existing.alarms.get(spec.region, {}).get(spec.name)
        if (
            found is None
            or found.composite != spec.composite
            or not same(spec.request, found.described)
        ):
            operation = "PutCompositeAlarm" if spec.composite else "PutMetricAlarm"
            puts.append(Call(cloudwatch(spec.region), operation, dict(spec.request), spec.name))
    deletes: list[Call] = []
    held: list[str] = []
    described = {(spec.region, spec.name): spec for spec in wanted}
    for region, alarms in sorted(existing.alarms.items()):
        gone = {
            name
            for name, alarm in alarms.items()
            if owns(dict(alarm.described)) and (region, name) not in described
        }
        # Composites that stay (described ones with their new rule, or anyone else's)
        # keep every alarm they name.
        named: set[str] = set()
        for name, alarm in alarms.items():
            if alarm.composite and name not in gone:
                own = described.get((region, name))
                rule = own.request["AlarmRule"] if own else alarm.described.get("AlarmRule", "")
                named.update(children_of(str(rule)))
        named.update(child for spec in wanted if spec.region == region for child in spec.children)
        composites = sorted(n for n in gone if alarms[n].composite)
        metric = sorted(n for n in gone if not alarms[n].composite and n not in named)
        held += sorted(n for n in gone if not alarms[n].composite and n in named)
        for names in (composites, metric):
            for chunk in chunked(names, DELETE_ALARMS_MAX_NAMES):
                deletes.append(
                    Call(
                        cloudwatch(region),
                        "DeleteAlarms",
                        {"AlarmNames": list(chunk)},
                        ", ".join(chunk),
                    )
                )
    return puts + deletes, held


# Dashboards ---------------------------------------------------------------------------


def _same_body(wanted: str, found: str) -> bool:
    try:
        return bool(json.loads(wanted) == json.loads(found))
    except ValueError:
        return False


def dashboard_calls(
    region: str,
    wanted: Mapping[str, str],
    existing: Mapping[str, str | None],
    owned: Callable[[str], bool],
) -> list[Call]:
    """Put what is missing or differs (a body of None is not compared), delete owned
    dashboards no longer described."""
    calls = [
        Call(
            cloudwatch(region),
            "PutDashboard",
            {"DashboardName": name, "DashboardBody": body},
            name,
        )
        for name, body in sorted(wanted.items())
        if name not in existing
        or (existing[name] is not None and not _same_body(body, str(existing[name])))
    ]
    stale = sorted(name for name in existing if owned(name) and name not in wanted)
    for chunk in chunked(stale, DELETE_DASHBOARDS_MAX_NAMES):
        calls.append(
            Call(
                cloudwatch(region),
                "DeleteDashboards",
                {"DashboardNames": list(chunk)},
                ", ".join(chunk),
            )
        )
    return calls


def plan(
    console: Console, existing: Existing, region: str, owned_dashboard: Callable[[str], bool]
) -> Plan:
    """Every write that brings `existing` to `console`, in order (module doc)."""
    alarms, held = alarm_calls(console.alarms, existing)
    calls: Iterable[Call] = (
        *log_calls(console.log_groups, console.metric_filters, console.saved_queries, existing),
        *detector_puts(console.detectors, existing),
        *alarms,
        *detector_deletes(console.detectors, existing),
        *dashboard_calls(region, console.dashboards, existing.dashboards, owned_dashboard),
    )
    return Plan(tuple(calls), tuple(held))
