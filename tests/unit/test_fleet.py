from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.fleet.events import epoch_ms
from chalicelib.fleet.health import is_unhealthy, owner_snapshots, snapshot

NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
TOTALS = {"last_hour": 1, "last_24h": 3, "total": 9}


def row(instance_id: str, state: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "state": state,
        "managed": True,
        "gone": state == "terminated",
        "last_event_ms": 1000,
        "instance_type": "c5.xlarge",
        "availability_zone": "us-east-1a",
        "lifecycle": "spot",
        "array_id": "a-1",
        **extra,
    }


def test_a_check_in_alarm_since_the_instance_started_is_unhealthy() -> None:
    assert is_unhealthy(row("i-1", check_status_state="ALARM", check_status_ms=2000))
    assert is_unhealthy(row("i-1", check_system_state="ALARM", check_system_ms=1000))
    assert not is_unhealthy(row("i-1", check_status_state="OK", check_status_ms=2000))
    assert not is_unhealthy(
        row("i-1", check_status_state="INSUFFICIENT_DATA", check_status_ms=2000)
    )
    # An ALARM from before the instance last came up says nothing about this run.
    assert not is_unhealthy(row("i-1", check_status_state="ALARM", check_status_ms=500))


def test_snapshot_counts_the_managed_fleet() -> None:
    rows = [
        row("i-1", check_status_state="ALARM", check_status_ms=2000),
        *(row(f"i-{n}") for n in range(2, 11)),
        row("i-11", state="stopped"),
        row("i-12", state="terminated"),
        row("i-13", managed=False),
        row(
            "i-14", lifecycle="on-demand", instance_type="g5.xlarge", availability_zone="us-east-1b"
        ),
        {"instance_id": "i-15", "check_status_state": "ALARM"},  # health only, never seen running
    ]
    document = snapshot(rows, TOTALS, NOW)
    assert document["instances"] == {
        "total": 12,
        "running": 11,
        "by_state": {"running": 11, "stopped": 1},
        "by_type": {"c5.xlarge": 10, "g5.xlarge": 1},
        "by_availability_zone": {"us-east-1a": 10, "us-east-1b": 1},
        "by_lifecycle": {"on-demand": 1, "spot": 10},
    }
    assert document["unhealthy"] == {"count": 1, "percent": 9.09, "instance_ids": ["i-1"]}
    assert document["interruptions"] == TOTALS
    assert document["active_arrays"] == ["a-1"]
    assert document["updated_at"] == "2026-01-27T12:00:00Z"


def test_an_empty_fleet_is_zero_percent_unhealthy() -> None:
    assert snapshot([], TOTALS, NOW)["unhealthy"] == {
        "count": 0,
        "percent": 0.0,
        "instance_ids": [],
    }


def test_each_owner_gets_a_snapshot_of_their_rows_only() -> None:
    now_ms = epoch_ms(NOW)
    rows = [
        row("i-1", owner="alice", check_status_state="ALARM", check_status_ms=2000),
        row("i-2", owner="alice", interrupted_ms=now_ms - 3_599_999),  # just inside the hour
        row("i-3", owner="alice", interrupted_ms=now_ms - 3_600_000),  # just outside
        row("i-4", owner="alice", state="terminated", interrupted_ms=now_ms - 86_400_000),
        row("i-5", owner="bob", array_id="b-1"),
        row("i-6"),  # no owner: in the fleet's snapshot only
    ]
    documents = owner_snapshots(rows, {"alice": 7}, NOW)
    assert sorted(documents) == ["alice", "bob"]
    alice, bob = documents["alice"], documents["bob"]
    assert alice == snapshot(rows[:4], alice["interruptions"], NOW)
    assert alice["interruptions"] == {"last_hour": 1, "last_24h": 2, "total": 7}
    assert alice["unhealthy"]["instance_ids"] == ["i-1"]
    assert (alice["instances"]["total"], alice["instances"]["running"]) == (3, 3)
    assert bob["interruptions"] == {"last_hour": 0, "last_24h": 0, "total": 0}
    assert (bob["instances"]["total"], bob["active_arrays"]) == (1, ["b-1"])
    assert owner_snapshots([row("i-6")], {}, NOW) == {}
