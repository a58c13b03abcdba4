"""An array's cost through the local stack (SPEC §14): it grows while the array runs,
stops when it ends, reads the same (`as_of` included) once finished, and a spot array
costs less than the same seconds on demand. Prices are the shipped snapshot's
(`PRICES_FROM=snapshot`: moto has no Price List API)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually, put_rows
from tests.e2e.test_local_stack import put_ec2_event, running

pytestmark = pytest.mark.e2e

ARRAY = "priced-20261204-c0ffee"
LINUX_AMI = "ami-1e749f67"  # moto's default image in the other tests is Windows


def cost(stack: Stack) -> dict[str, Any] | None:
    code, body = stack.get(f"/arrays/{ARRAY}/progress")
    return body["cost"] if code == 200 else None


def test_an_arrays_cost_grows_while_it_runs_and_is_fixed_once_it_ends(stack: Stack) -> None:
    tags = [
        {"Key": "spawn:managed", "Value": "true"},
        {"Key": "spawn:job-array-id", "Value": ARRAY},
    ]
    reservation = stack.client("ec2").run_instances(
        ImageId=LINUX_AMI,
        MinCount=2,
        MaxCount=2,
        InstanceType="m5.large",
        InstanceMarketOptions={"MarketType": "spot"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    instances = [i["InstanceId"] for i in reservation["Instances"]]
    started = datetime.now(UTC) - timedelta(hours=1)
    for instance in instances:
        running(stack, instance, started)
    put_rows(stack, ARRAY, [("running", 1, None, i) for i in instances])

    first = eventually(lambda: (c := cost(stack)) and c["usd"] > 0 and c)
    assert first["usd_per_hour"] > 0
    assert first["by_lifecycle"]["spot"] == first["breakdown"]["compute"] > 0
    assert first["usd"] < first["on_demand_equivalent_usd"]
    assert "snapshot:" in first["price_source"]
    time.sleep(1.5)
    grown = eventually(lambda: (c := cost(stack)) and c["usd"] > first["usd"] and c)
    assert grown["as_of"] >= first["as_of"]

    stack.client("ec2").terminate_instances(InstanceIds=instances)
    ended = datetime.now(UTC)
    for instance in instances:
        put_ec2_event(
            stack,
            "ec2-state-change-terminated.json",
            {"instance-id": instance, "state": "terminated"},
            ended,
        )
    put_rows(stack, ARRAY, [("completed", 1, None, i) for i in instances])
    final = eventually(lambda: (c := cost(stack)) and c["usd_per_hour"] == 0 and c)
    stack.tick()
    time.sleep(1.0)
    stack.tick()
    assert cost(stack) == final == cost(stack)
    # An EventBridge event's time has whole seconds: the run ends up to a second before
    # the moment `grown` was priced at, so the final figure may be that second lower.
    assert final["projected_usd"] == final["usd"] >= grown["usd"] - grown["usd_per_hour"] / 3600
