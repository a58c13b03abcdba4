"""`watch` shows an array's failed launches under its pending count; `fleet` by code."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from spawn_monitor import views
from tests.contract import bodies, schema
from tests.unit.test_cli_views import SETTINGS, render

FAILURES = {
    "total": 8,
    "by_code": {"InsufficientInstanceCapacity": 5, "MaxSpotInstanceCountExceeded": 3},
    "by_type_zone": [
        {
            "instance_type": "c5.xlarge",
            "availability_zone": "us-east-1a",
            "code": "InsufficientInstanceCapacity",
            "count": 5,
        }
    ],
    "last": {
        "at": "2026-01-27T11:20:09Z",
        "code": "MaxSpotInstanceCountExceeded",
        "message": "Max spot instance count exceeded",
    },
}


def progress(**extra: Any) -> dict[str, Any]:
    workers = {"total": 20, "pending": 8, "running": 12, "completed": 0, "failed": 0}
    return {"array_id": "render-20260127-a1b2c3", "workers": workers, **extra}


def test_watch_says_why_members_are_pending() -> None:
    frame = render(views.watch_frame(progress(launch_failures=FAILURES)), width=140)
    lines = frame.splitlines()
    pending = next(i for i, line in enumerate(lines) if "pending 8" in line)
    under = lines[pending + 1]
    assert "launch failures 8" in under
    assert "5 InsufficientInstanceCapacity, 3 MaxSpotInstanceCountExceeded" in under
    assert "most: c5.xlarge us-east-1a, 5 InsufficientInstanceCapacity" in lines[pending + 2]
    assert "Max spot instance count exceeded" in frame


def test_no_line_without_failures() -> None:
    zero = {"total": 0, "by_code": {}, "by_type_zone": [], "last": None}
    assert "launch failures" not in render(views.watch_frame(progress(launch_failures=zero)))
    assert "launch failures" not in render(views.watch_frame(progress()))


def test_fleet_shows_failures_by_code() -> None:
    fleet = {
        "launch_failures": {
            "last_hour": {"VcpuLimitExceeded": 2},
            "last_24h": {"VcpuLimitExceeded": 2, "InsufficientInstanceCapacity": 7},
        }
    }
    shown = render(views.fleet_view(fleet), width=160)
    assert "last hour: 2 VcpuLimitExceeded" in shown
    assert "last 24 h: 7 InsufficientInstanceCapacity, 2 VcpuLimitExceeded" in shown


@SETTINGS
@given(bodies(schema("ArrayLaunchFailures")))
def test_any_valid_launch_failures_render(failures: dict[str, Any]) -> None:
    render(views.watch_frame(progress(launch_failures=failures)))
