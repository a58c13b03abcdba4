"""`SFM_ALARM_MODE=fleet-query make run`: the two query alarms instead of per-instance
ones, and health from contributor events sent as CloudWatch sends them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import load_event
from tests.e2e.conftest import Stack, eventually, start_stack
from tests.e2e.test_local_stack import alarms_of, launch, running

pytestmark = pytest.mark.e2e
QUERY_ALARMS = ["spawn-fleet-status-check", "spawn-fleet-system-check"]


@pytest.fixture(scope="module")
def fleet_query(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("fleet-query"), SFM_ALARM_MODE="fleet-query") as s:
        yield s


def test_fleet_query_watches_with_two_alarms_and_contributor_events(fleet_query: Stack) -> None:
    stack = fleet_query
    found = stack.client("cloudwatch").describe_alarms(AlarmNames=QUERY_ALARMS)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in found) == QUERY_ALARMS
    [instance] = launch(stack)
    running(stack, instance)

    def fleet() -> dict[str, object]:
        return stack.get("/fleet")[1]  # type: ignore[no-any-return]

    eventually(lambda: fleet()["instances"]["running"] == 1, timeout=8)  # type: ignore[index]
    assert alarms_of(stack, instance) == []  # the lifecycle made no alarm calls

    event = copy.deepcopy(load_event("cloudwatch-alarm-contributor-state-change.json"))
    event["detail"]["alarmContributor"]["attributes"]["InstanceId"] = instance
    event["detail"]["state"]["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    stack.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Resources": event["resources"],
            }
        ]
    )
    eventually(
        lambda: fleet()["unhealthy"]["instance_ids"] == [instance],  # type: ignore[index]
        timeout=8,
    )
    alerts = stack.get("/alerts?kind=alarm&limit=10")[1]["alerts"]  # the system's own too
    assert any(a["instance_id"] == instance and a["check"] == "status" for a in alerts)
