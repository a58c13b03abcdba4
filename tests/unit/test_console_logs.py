"""Workers' logs as data: groups, the agent config, filters and saved queries agree."""

from __future__ import annotations

from chalicelib.console.logs import (
    ERRORS_GROUP,
    SPORED_GROUP,
    WORKERS_GROUP,
    agent_config,
    log_groups,
    metric_filters,
    saved_queries,
)
from chalicelib.contract import catalog
from chalicelib.core.settings import LOG_RETENTION_CHOICES, Settings

TASK_LINE = "2026-01-27 10:00:00 INFO Task 17 completed in 12.5 seconds"
ERROR_LINE = "2026-01-27 10:00:01 ERROR DownloadFailed s3://bucket/key: timed out"


def test_groups_and_retention_come_from_settings() -> None:
    groups = {g.name: g.retention_days for g in log_groups(Settings())}
    assert groups == {WORKERS_GROUP: 7, SPORED_GROUP: 7, ERRORS_GROUP: 30}
    custom = log_groups(Settings(worker_log_retention_days=14, error_log_retention_days=90))
    assert {g.name: g.retention_days for g in custom}[ERRORS_GROUP] == 90
    assert all(g.retention_days in LOG_RETENTION_CHOICES for g in custom)


def test_the_agent_ships_to_exactly_the_described_groups() -> None:
    settings = Settings(worker_log_retention_days=3)
    entries = agent_config(settings)["logs"]["logs_collected"]["files"]["collect_list"]
    assert {(e["log_group_name"], e["retention_in_days"]) for e in entries} == {
        (g.name, g.retention_days) for g in log_groups(settings)
    }
    assert len({e["file_path"] for e in entries}) == len(entries)
    assert all(e["log_stream_name"] == "{instance_id}" for e in entries)


def fields(pattern: str) -> list[str]:
    return [f.strip() for f in pattern.strip("[]").split(",")]


def matches(pattern: str, line: str) -> dict[str, str] | None:
    """Space-delimited matching as CloudWatch Logs does it, for these patterns: one
    field per word, `name="literal"` and `name=VALUE` must equal, `...` takes the rest."""
    words = line.split(" ")
    values: dict[str, str] = {}
    for index, field in enumerate(fields(pattern)):
        if field == "...":
            return values
        if index >= len(words):
            return None
        name, _, literal = field.partition("=")
        if literal and words[index] != literal.strip('"'):
            return None
        values[name] = words[index]
    return values if len(words) == len(fields(pattern)) else None


def test_the_filters_read_the_guides_lines_into_published_metrics() -> None:
    duration, errors = metric_filters()
    assert matches(duration.pattern, TASK_LINE) == {
        "date": "2026-01-27",
        "time": "10:00:00",
        "level": "INFO",
        "task": "Task",
        "task_id": "17",
        "completed": "completed",
        "in": "in",
        "duration": "12.5",
        "unit": "seconds",
    }
    assert matches(duration.pattern, ERROR_LINE) is None
    assert matches(errors.pattern, ERROR_LINE) == {
        "date": "2026-01-27",
        "time": "10:00:01",
        "level": "ERROR",
        "error_type": "DownloadFailed",
    }
    assert matches(errors.pattern, TASK_LINE) is None
    assert duration.transformation["metricValue"] == "$duration"
    assert errors.transformation["dimensions"] == {"ErrorType": "$error_type"}
    # CloudWatch Logs refuses a default value on a filter with dimensions.
    assert "defaultValue" not in errors.transformation
    for spec in (duration, errors):
        t = spec.transformation
        dims = tuple(t.get("dimensions", {}))
        [metric] = catalog.find(t["metricNamespace"], t["metricName"], dims)
        assert metric.unit == t["unit"]
        assert spec.name.startswith("spawn-")
        assert spec.group == WORKERS_GROUP


def test_saved_queries_sit_in_the_spawn_folder_on_described_groups() -> None:
    queries = saved_queries()
    assert len(queries) == 3
    names = {g.name for g in log_groups(Settings())}
    for query in queries:
        assert query.name.startswith("spawn/")
        assert set(query.groups) <= names
        assert len(query.query) <= 10000
    slowest = queries[0].query
    assert '"Task * completed in * seconds"' in slowest  # the line the filter reads
