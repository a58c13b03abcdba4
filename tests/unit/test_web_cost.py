"""The web view's cost line (`static/cost.js`), run in node: what an array's page shows
for cost so far, rate, projected cost and budget (the browser test checks the page)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from spawn_monitor.ui import static_file

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def summary(progress: Any) -> Any:
    script = static_file("cost.js").decode() + (
        f"\nprocess.stdout.write(JSON.stringify(costSummary({json.dumps(progress)})));"
    )
    assert NODE is not None
    done = subprocess.run(  # noqa: S603 - node on this package's own file
        [NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(done.stdout)


def cost(usd: float, **more: Any) -> dict[str, Any]:
    return {"usd": usd, "usd_per_hour": 1.5, "projected_usd": None, "budget_usd": None, **more}


def test_a_running_array_shows_so_far_rate_projected_and_budget() -> None:
    shown = summary({"finished_at": None, "cost": cost(9.25, projected_usd=9.95, budget_usd=10)})
    assert shown == {
        "text": "$9.25 so far · $1.50/h · projected $9.95 · budget $10.00 (92 % used)",
        "level": "warn",
    }


@pytest.mark.parametrize(
    ("usd", "projected", "level"),
    [(5.0, 8.0, ""), (5.0, 9.0, "warn"), (9.0, None, "warn"), (10.0, None, "bad")],
)
def test_the_level_follows_the_budget_alerts(usd: float, projected: Any, level: str) -> None:
    body = {"finished_at": None, "cost": cost(usd, projected_usd=projected, budget_usd=10.0)}
    assert summary(body)["level"] == level


def test_a_finished_array_shows_what_it_cost_and_the_bill() -> None:
    body = {
        "finished_at": "2026-01-27T11:00:00Z",
        "cost": cost(3.1, projected_usd=3.1, billed_usd=3.0, billed_error_percent=3.33),
    }
    assert summary(body) == {"text": "$3.10 so far · billed $3.00 (estimate +3.3 %)", "level": ""}


@pytest.mark.parametrize("body", [{}, {"cost": None}, {"cost": {"usd": "1"}}, {"cost": []}])
def test_without_a_usable_cost_nothing_is_shown(body: Any) -> None:
    assert summary(body) is None
