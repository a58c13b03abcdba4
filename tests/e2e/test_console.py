"""The console through the local stack: set up at start, array dashboards as arrays come
and go, and one line for what moto cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.console.dashboards import array_dashboard_name
from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.e2e
FLEET_ALARMS_MOTO_HOLDS = {
    "spawn-fleet-unhealthy",
    "spawn-fleet-error-rate",
    "spawn-low-throughput",
    "spawn-daily-cost-limit",
    "spawn-cpu-anomaly",
    "spawn-cost-anomaly",
}


def dashboards(stack: Stack) -> set[str]:
    cloudwatch = stack.client("cloudwatch")
    pages = cloudwatch.get_paginator("list_dashboards").paginate(DashboardNamePrefix="spawn-")
    return {d["DashboardName"] for page in pages for d in page["DashboardEntries"]}


def report(stack: Stack, array_id: str, statuses: list[str]) -> None:
    """Workers' rows (SPEC §4), as spawn's workers write them."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for index, status in enumerate(statuses):
        stack.client("dynamodb").put_item(
            TableName="spawn-progress",
            Item={
                "array_id": {"S": array_id},
                "task_index": {"N": str(index)},
                "status": {"S": status},
                "tasks_completed": {"N": "3"},
                "last_update": {"S": now},
                "instance_id": {"S": f"i-{index:017x}"},
                "hostname": {"S": f"ip-10-0-1-{index}"},
            },
        )


def test_the_console_is_set_up_before_the_api_answers(stack: Stack) -> None:
    assert "spawn-fleet" in dashboards(stack)
    cloudwatch = stack.client("cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNames=sorted(FLEET_ALARMS_MOTO_HOLDS))
    assert {a["AlarmName"] for a in found["MetricAlarms"]} == FLEET_ALARMS_MOTO_HOLDS
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix="/aws/spawn/")
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups["logGroups"]} == {
        "/aws/spawn/workers": 7,
        "/aws/spawn/spored": 7,
        "/aws/spawn/errors": 30,
    }
    filters = stack.client("logs").describe_metric_filters(logGroupName="/aws/spawn/workers")
    assert {f["filterName"] for f in filters["metricFilters"]} == {
        "spawn-task-duration",
        "spawn-error-types",
    }
    # moto cannot hold the composite, the detectors or the saved queries: said once.
    assert stack.log().count("lacks some CloudWatch APIs") == 1


def test_each_array_gets_a_dashboard_and_a_finished_one_loses_it(stack: Stack) -> None:
    running, finishing = "e2e-console-20261126-aaaaaa", "e2e.console:done_1"
    report(stack, running, ["running", "completed"])
    report(stack, finishing, ["running", "running"])
    wanted = {array_dashboard_name(running), array_dashboard_name(finishing)}
    eventually(lambda: wanted <= dashboards(stack), timeout=10)
    assert array_dashboard_name(finishing) == "spawn-array-e2e_dconsole_cdone__1"

    # One dashboard per array the system knows, none for anything else.
    arrays = stack.client("dynamodb").scan(
        TableName="spawn-arrays", ProjectionExpression="array_id"
    )
    known = {array_dashboard_name(item["array_id"]["S"]) for item in arrays["Items"]}
    assert {d for d in dashboards(stack) if d.startswith("spawn-array-")} <= known

    report(stack, finishing, ["completed", "failed"])
    eventually(lambda: array_dashboard_name(finishing) not in dashboards(stack), timeout=20)
    assert array_dashboard_name(running) in dashboards(stack)
