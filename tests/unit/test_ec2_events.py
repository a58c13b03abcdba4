from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.fleet.events import (
    MalformedEvent,
    latest_per_instance,
    parse_rebalance,
    parse_spot_warning,
    parse_state_change,
)
from tests.conftest import load_event


def test_state_change_sample_parses() -> None:
    change = parse_state_change(load_event("ec2-state-change-running.json"))
    assert change.state == "running"
    assert (
        change.instance_id == load_event("ec2-state-change-running.json")["detail"]["instance-id"]
    )
    assert change.time.tzinfo is not None


def test_spot_and_rebalance_samples_parse() -> None:
    warning = parse_spot_warning(load_event("ec2-spot-interruption-warning.json"))
    assert warning.action == "terminate"
    rebalance = parse_rebalance(load_event("ec2-rebalance-recommendation.json"))
    assert rebalance.instance_id.startswith("i-")


def _broken(mutate: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event("ec2-state-change-running.json"))
    mutate(event)
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "not a JSON object"),
        (_broken(lambda e: e.pop("detail")), "detail"),
        (_broken(lambda e: e["detail"].update({"instance-id": "x; drop"})), "instance-id"),
        # A `$`-anchored pattern once let a trailing newline through into alarm names.
        (
            _broken(lambda e: e["detail"].update({"instance-id": "i-0123456789abcdef0\n"})),
            "instance-id",
        ),
        (_broken(lambda e: e["detail"].update({"state": "exploded"})), "state"),
        (_broken(lambda e: e.update({"time": "yesterday"})), "time"),
        (_broken(lambda e: e.update({"detail-type": "Something Else"})), "detail-type"),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(event: Any, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_state_change(event)


def test_latest_per_instance_keeps_the_newest_by_time_then_state() -> None:
    base = load_event("ec2-state-change-running.json")
    t0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)

    def change(state: str, at: datetime) -> Any:
        event = copy.deepcopy(base)
        event.update({"time": at.isoformat().replace("+00:00", "Z")})
        event["detail"]["state"] = state
        return parse_state_change(event)

    changes = [
        change("terminated", t0 + timedelta(seconds=30)),
        change("running", t0),
        change("pending", t0),
        change("running", t0),
    ]
    assert latest_per_instance(changes)[base["detail"]["instance-id"]].state == "terminated"
    same_second = [change("running", t0), change("pending", t0)]
    assert latest_per_instance(same_second)[base["detail"]["instance-id"]].state == "running"
