"""Metrics as Embedded Metric Format log lines (Powertools), never one API call each.

In Lambda, CloudWatch Logs turns each EMF line into metric data points at no API
cost to the function. A metric the SPEC lists with no dimension is emitted without
Powertools' `service` dimension: no service is ever set on these emitters. Every
metric must be in the published list (`chalicelib.contract.catalog`), which the
dashboards and alarms read from; one that is not raises `UnpublishedMetric`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from chalicelib.contract.catalog import check_emitted

Figures = Mapping[str, tuple[MetricUnit, float]]


def emit(namespace: str, figures: Figures, dimensions: Mapping[str, str] | None = None) -> None:
    """Print one EMF line with `figures` (name → (unit, value)) under `dimensions`.

    Example:
        >>> emit("Spawn/SpotInterruptions", {"Count": (MetricUnit.Count, 1)})
    """
    if not figures:
        return
    check_emitted(
        namespace, {name: unit.value for name, (unit, _) in figures.items()}, dimensions or {}
    )
    emitter = EphemeralMetrics(namespace=namespace, service=None)
    for name, value in (dimensions or {}).items():
        emitter.add_dimension(name=name, value=value)
    for name, (unit, amount) in figures.items():
        emitter.add_metric(name=name, unit=unit, value=amount)
    emitter.flush_metrics()
