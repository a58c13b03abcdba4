"""The API fuzzed from its OpenAPI description on the local stack (bounded; `make fuzz`
runs more): every route, valid and invalid inputs, unknown and known arrays."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import Stack, eventually
from tests.e2e.fuzz import fuzz, summary

pytestmark = pytest.mark.e2e
ARRAY = "fuzz-20261127-f0220a"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "24"))


def test_every_route_survives_the_fuzz_of_its_own_description(stack: Stack) -> None:
    # An array the stack knows, so the array routes answer 200 as well as 400 and 404.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for index in range(3):
        stack.client("dynamodb").put_item(
            TableName="spawn-progress",
            Item={
                "array_id": {"S": ARRAY},
                "task_index": {"N": str(index)},
                "status": {"S": "running"},
                "tasks_completed": {"N": "1"},
                "last_update": {"S": now},
                "instance_id": {"S": f"i-{index:017x}"},
                "hostname": {"S": f"ip-10-0-0-{index}"},
            },
        )
    eventually(lambda: stack.get(f"/arrays/{ARRAY}/progress")[0] == 200, timeout=15)

    reports = fuzz(stack.api_endpoint, EXAMPLES, [ARRAY])

    document = stack.get("/openapi.json")[1]
    described = {f"GET {path}" for path in document["paths"]}
    # schemathesis leaves out the URL it reads the description from;
    # tests/integration/test_openapi.py validates that document itself.
    assert set(reports) == described - {"GET /openapi.json"}
    assert all(r.examples > 0 for r in reports.values()), summary(reports)
    assert not any(r.failures for r in reports.values()), summary(reports)
    statuses = {s for r in reports.values() for s in r.statuses}
    assert {200, 400, 404} <= statuses, summary(reports)
