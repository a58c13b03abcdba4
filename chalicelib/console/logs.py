"""Workers' logs as data: log groups, metric filters, saved queries, the agent config.

The CloudWatch agent on each worker ships three files to three groups; `agent_config`
(`make agent-config`) is built from `log_groups`, so it names only groups setup makes.
Filters read the guide's line format, with its timestamp as two fields:

    2026-01-27 10:00:00 INFO Task 17 completed in 12.5 seconds

Details: docs/operations.md ("Workers").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.contract import catalog
from chalicelib.contract.catalog import LOG_METRICS
from chalicelib.core.settings import Settings

GROUP_PREFIX = "/aws/spawn/"
WORKERS_GROUP = "/aws/spawn/workers"
SPORED_GROUP = "/aws/spawn/spored"
ERRORS_GROUP = "/aws/spawn/errors"
FILTER_PREFIX = "spawn-"
QUERY_PREFIX = "spawn/"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class LogGroup:
    """A log group, its retention, and the worker file the agent ships to it."""

    name: str
    retention_days: int
    file_path: str
    purpose: str


@dataclass(frozen=True)
class MetricFilter:
    """A metric filter: its group, name, pattern and the one metric it makes."""

    group: str
    name: str
    pattern: str
    transformation: Mapping[str, Any]
    purpose: str


@dataclass(frozen=True)
class SavedQuery:
    """A Logs Insights query definition, shown in the console under the `spawn` folder."""

    name: str
    query: str
    groups: tuple[str, ...]
    purpose: str


def log_groups(settings: Settings) -> tuple[LogGroup, ...]:
    """The three groups, with retention from `WORKER_LOG_RETENTION_DAYS` (workers and
    spored) and `ERROR_LOG_RETENTION_DAYS`."""
    return (
        LogGroup(
            WORKERS_GROUP,
            settings.worker_log_retention_days,
            "/home/ec2-user/worker.log",
            "workers' task logs",
        ),
        LogGroup(
            SPORED_GROUP,
            settings.worker_log_retention_days,
            "/var/log/spored.log",
            "spawn's agent on each instance",
        ),
        LogGroup(
            ERRORS_GROUP,
            settings.error_log_retention_days,
            "/home/ec2-user/worker-errors.log",
            "workers' error logs, kept longer",
        ),
    )


def _metric(name: str, dimensions: tuple[str, ...]) -> catalog.Metric:
    [metric] = catalog.find(LOG_METRICS, name, dimensions)
    return metric


def metric_filters() -> tuple[MetricFilter, ...]:
    """The guide's two filters, into `Spawn/LogMetrics`."""
    duration = _metric("TaskDuration", ())
    errors = _metric("ErrorsByType", ("ErrorType",))
    return (
        MetricFilter(
            WORKERS_GROUP,
            "spawn-task-duration",
            '[date, time, level, task="Task", task_id, completed="completed", in="in", '
            'duration, unit="seconds"]',
            {
                "metricName": duration.name,
                "metricNamespace": duration.namespace,
                "metricValue": "$duration",
                "unit": duration.unit,
            },
            "task duration from `Task … completed in N seconds` lines",
        ),
        MetricFilter(
            WORKERS_GROUP,
            "spawn-error-types",
            "[date, time, level=ERROR, error_type, ...]",
            {
                "metricName": errors.name,
                "metricNamespace": errors.namespace,
                "metricValue": "1",
                "unit": errors.unit,
                "dimensions": {"ErrorType": "$error_type"},
            },
            "errors counted by the word after ERROR",
        ),
    )


ERRORS_BY_HOUR = (
    "fields @timestamp, @message\n| filter @message like /ERROR/\n"
    "| stats count() as errors by bin(1h)"
)


def saved_queries() -> tuple[SavedQuery, ...]:
    """The guide's three Logs Insights queries, on the workers' group."""
    groups = (WORKERS_GROUP,)
    return (
        SavedQuery(
            f"{QUERY_PREFIX}Top 10 slowest tasks",
            "fields @timestamp, @logStream, @message\n"
            "| filter @message like /Task \\S+ completed in/\n"
            '| parse @message "Task * completed in * seconds" as task_id, duration\n'
            "| sort duration desc\n| limit 10",
            groups,
            "the slowest tasks and the workers that ran them",
        ),
        SavedQuery(
            f"{QUERY_PREFIX}Error rate by hour",
            ERRORS_BY_HOUR,
            groups,
            "error lines per hour",
        ),
        SavedQuery(
            f"{QUERY_PREFIX}Tasks completed per worker",
            "fields @logStream, @message\n"
            "| filter @message like /Task \\S+ completed in/\n"
            "| stats count() as tasks by @logStream\n| sort tasks desc",
            groups,
            "tasks per worker (one log stream per instance)",
        ),
    )


def errors_widget_query() -> str:
    """The fleet dashboard's log widget: the error-rate query on the workers' group."""
    return f"SOURCE '{WORKERS_GROUP}' | {ERRORS_BY_HOUR}"


def agent_config(settings: Settings) -> dict[str, Any]:
    """The CloudWatch agent configuration for workers: each file to its group, one
    stream per instance, with the same retention the setup keeps."""
    return {
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": group.file_path,
                            "log_group_name": group.name,
                            "log_stream_name": "{instance_id}",
                            "timestamp_format": TIMESTAMP_FORMAT,
                            "retention_in_days": group.retention_days,
                        }
                        for group in log_groups(settings)
                    ]
                }
            }
        }
    }
