"""Logs and metrics: the Powertools logger, and metrics as EMF log lines.

The logger writes JSON; `app.py` injects the Lambda context through Chalice middleware,
so every line (this package's module loggers too) carries the cold start and request id.

In Lambda, CloudWatch Logs turns each EMF line into metric data points at no API
cost to the function. A metric the SPEC lists with no dimension is emitted without
Powertools' `service` dimension: no service is ever set on these emitters. Every
metric must be in the published list (`chalicelib.contract.catalog`), which the
dashboards and alarms read from; one that is not raises `UnpublishedMetric`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from chalicelib.contract.catalog import check_emitted

Figures = Mapping[str, tuple[MetricUnit, float]]
SERVICE = "spawn-fleet-monitor"


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stdout` as it is at each line: the local stack and tests swap it
    after this module is imported (in Lambda it never changes)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


logger = Logger(service=SERVICE, logger_handler=_StdoutHandler())


def configure_logging() -> None:
    """Make this package's module loggers write through `logger`'s handler, so they
    share its JSON format and its keys (call once every module is imported)."""
    copy_config_to_registered_loggers(
        source_logger=logger,
        include={n for n in logging.root.manager.loggerDict if n.startswith("chalicelib")},
    )


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
