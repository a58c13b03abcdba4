"""Against the local stack (issue #22's must-show): a budget crossing gives exactly one
`array_budget` alert per threshold, in the alert feed, however many ticks follow.

The array's budget is its members' `spawn:cost-limit`, set tiny so that seconds of
running cross both 90 % and 100 %.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually, put_rows
from tests.e2e.test_cost import LINUX_AMI
from tests.e2e.test_local_stack import running

pytestmark = pytest.mark.e2e


def budget_alerts(stack: Stack, array_id: str) -> list[str]:
    status, body = stack.get(f"/alerts?event_type=array_budget&array_id={array_id}&limit=50")
    assert status == 200, body
    return sorted(a["severity"] for a in body["alerts"])


def test_a_budget_crossing_alerts_once_per_threshold(stack: Stack) -> None:
    array_id = f"budget-20261204-{secrets.token_hex(3)}"
    tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": array_id,
        "spawn:job-array-size": "2",
        "spawn:cost-limit": "0.000001",
    }
    # A type the price snapshot has, on Linux (moto's default image is Windows).
    reservation = stack.client("ec2").run_instances(
        ImageId=LINUX_AMI,
        MinCount=2,
        MaxCount=2,
        InstanceType="m5.large",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    instances = [i["InstanceId"] for i in reservation["Instances"]]
    for instance in instances:
        running(stack, instance)
    put_rows(stack, array_id, [("running", 1, 10, instance) for instance in instances])

    def progress() -> dict[str, Any] | None:
        status, body = stack.get(f"/arrays/{array_id}/progress")
        return body if status == 200 and body["workers"]["running"] == 2 else None

    eventually(progress, timeout=30)
    eventually(lambda: budget_alerts(stack, array_id) == ["critical", "warning"], timeout=60)
    for _ in range(3):
        stack.tick()
    assert budget_alerts(stack, array_id) == ["critical", "warning"]
    cost = stack.get(f"/arrays/{array_id}/progress")[1]["cost"]
    assert cost["budget_usd"] == pytest.approx(0.000002)
    assert cost["usd"] >= cost["budget_usd"]
