"""The bill as ground truth (SPEC §14): the daily Cost Explorer job on moto.

`GetCostAndUsage` runs on moto: its answers are queued through moto's documented API
(`/moto-api/static/ce/cost-and-usage-results`; a request with a new body, such as one
carrying a `NextPageToken`, takes the next answer). moto has no
`ListCostAllocationTags`, so that one call is answered by a botocore `before-call`
hook on the same client (what `Stubber` does, for one operation only).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from chalice.app import Chalice
from chalice.test import Client

from chalicelib import container as container_module
from chalicelib.api.arrays import arrays_api
from chalicelib.container import Container
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.progress.billed import STATUS_KEY, billed_key
from chalicelib.progress.summary import Counts, Summary
from local.provision import Provisioned
from testkit.faults import count_calls

NOW = datetime(2026, 2, 10, 6, 0, tzinfo=UTC)
DONE = "render-20260205-a1b2c3"  # finished inside the window
RUNNING = "train-20260209-d4e5f6"  # still running: not stored yet
OLD = "sweep-20260120-0f0f0f"  # started before the window: the bill holds only part
MS = 1000


def ms(at: datetime) -> int:
    return int(at.timestamp() * MS)


def group(array_id: str, amount: str) -> dict[str, Any]:
    return {
        "Keys": [f"spawn:job-array-id${array_id}"],
        "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
    }


def day(date: str, *groups: dict[str, Any]) -> dict[str, Any]:
    end = (datetime.fromisoformat(date) + timedelta(days=1)).date().isoformat()
    return {
        "TimePeriod": {"Start": date, "End": end},
        "Total": {},
        "Groups": list(groups),
        "Estimated": False,
    }


PAGE_1 = {
    "ResultsByTime": [
        day("2026-02-05", group(DONE, "3.10"), group("", "0.50"), group(OLD, "1.00")),
    ],
    "DimensionValueAttributes": [],
    "NextPageToken": "page-2",
}
PAGE_2 = {
    "ResultsByTime": [day("2026-02-06", group(DONE, "0.90"), group(RUNNING, "2.00"))],
    "DimensionValueAttributes": [],
}


def queue_answers(*pages: dict[str, Any]) -> None:
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": list(pages)},
        timeout=5,
    )
    assert response.status_code == 201


def tag_answer(ce: Any, status: str | None) -> list[dict[str, Any]]:
    """Answer `ListCostAllocationTags` (moto lacks it); returns the requests seen."""
    seen: list[dict[str, Any]] = []

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        tags = [] if status is None else [{"TagKey": "spawn:job-array-id", "Status": status}]
        return AWSResponse("", 200, {}, None), {"CostAllocationTags": tags}

    ce.meta.events.register(
        "provide-client-params.ce.ListCostAllocationTags",
        lambda params, **_: seen.append(dict(params)),
    )
    ce.meta.events.register("before-call.ce.ListCostAllocationTags", answer)
    return seen


def summary(array_id: str, started: datetime, finished: datetime | None) -> Summary:
    return Summary(
        array_id=array_id,
        counts=Counts(completed=2) if finished else Counts(running=2),
        first_update_ms=ms(started),
        last_update_ms=ms(finished or started),
        last_change_ms=ms(finished or started),
        finished_at_ms=None if finished is None else ms(finished),
        final_published=finished is not None,
    )


@pytest.fixture
def wiring(session: boto3.Session, infra: Provisioned) -> Container:
    """The container on moto at NOW, with three arrays, each with a live estimate of
    4.20 USD stored by the cost engine (the fleet tick's cost documents)."""
    wiring = Container(Settings(api_isolation="off"), Clients(session), clock=NOW.timestamp)
    store = wiring.summary_store
    store.save(
        summary(DONE, datetime(2026, 2, 5, 1, tzinfo=UTC), datetime(2026, 2, 6, 3, tzinfo=UTC))
    )
    store.save(summary(RUNNING, datetime(2026, 2, 6, 1, tzinfo=UTC), None))
    store.save(summary(OLD, datetime(2026, 1, 20, tzinfo=UTC), datetime(2026, 2, 5, 2, tzinfo=UTC)))
    wiring.cost_store.save_changed({a: {"usd": 4.2} for a in (DONE, RUNNING, OLD)}, NOW)
    return wiring


def test_an_inactive_tag_reads_no_bill(wiring: Container) -> None:
    ce = wiring.clients.ce
    calls = count_calls(ce)  # the tag answer ends its call before counting: `seen`
    seen = tag_answer(ce, "Inactive")
    report = wiring.billed_costs.run(NOW)
    assert report.tag_active is False
    assert (calls, report.calls) == ({}, 1)
    assert seen == [{"TagKeys": ["spawn:job-array-id"], "Type": "UserDefined"}]
    assert wiring.stats.get_document(billed_key(DONE)) is None
    status = wiring.stats.get_document(STATUS_KEY)
    assert status is not None
    assert status["tag_active"] is False


def test_one_paged_read_bills_every_finished_array(wiring: Container) -> None:
    ce = wiring.clients.ce
    calls = count_calls(ce)
    seen = tag_answer(ce, "Active")
    queue_answers(PAGE_1, PAGE_2)
    requests_seen: list[dict[str, Any]] = []
    ce.meta.events.register(
        "provide-client-params.ce.GetCostAndUsage",
        lambda params, **_: requests_seen.append(dict(params)),
    )
    report = wiring.billed_costs.run(NOW)
    assert (len(seen), calls, report.calls) == (1, {"GetCostAndUsage": 2}, 3)
    assert report.truncated is False
    assert requests_seen[0] == {
        "TimePeriod": {"Start": "2026-01-27", "End": "2026-02-10"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "TAG", "Key": "spawn:job-array-id"}],
    }
    assert requests_seen[1]["NextPageToken"] == "page-2"
    assert (report.arrays_billed, report.arrays_stored) == (3, 1)
    assert report.skipped == {"unfinished": 1, "before_window": 1}
    stored = wiring.stats.get_document(billed_key(DONE))
    assert stored is not None
    assert stored["billed_usd"] == pytest.approx(4.0)  # 3.10 + 0.90, over both pages
    assert stored["estimate_usd"] == pytest.approx(4.2)
    assert stored["error_percent"] == pytest.approx(5.0)
    assert wiring.stats.get_document(billed_key(RUNNING)) is None
    assert wiring.stats.get_document(billed_key(OLD)) is None


def test_an_answer_longer_than_the_bound_stores_nothing(
    session: boto3.Session, wiring: Container
) -> None:
    bounded = Container(Settings(billed_max_calls=2), Clients(session), clock=NOW.timestamp)
    ce = bounded.clients.ce
    calls = count_calls(ce)
    tag_answer(ce, "Active")
    queue_answers(PAGE_1, PAGE_2)
    report = bounded.billed_costs.run(NOW)
    assert report.truncated is True
    assert (calls, report.calls) == ({"GetCostAndUsage": 1}, 2)
    assert bounded.stats.get_document(billed_key(DONE)) is None


def test_a_failing_cost_explorer_is_reported_not_raised(wiring: Container) -> None:
    denied = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
    wiring.clients.ce.meta.events.register(
        "before-call.ce.ListCostAllocationTags",
        lambda **_: (AWSResponse("", 400, {}, None), denied),
    )
    report = wiring.billed_costs.run(NOW)
    assert report.error is not None
    assert report.error.startswith("ListCostAllocationTags failed")
    assert report.tag_active is None


def test_progress_shows_the_bill_beside_the_estimate_once_known(
    wiring: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container_module, "_installed", wiring)
    app = Chalice(app_name="test-billed")
    app.register_blueprint(arrays_api)
    with Client(app) as client:
        before = json.loads(client.http.get(f"/arrays/{DONE}/progress").body)
        assert "billed_usd" not in before["cost"]
        tag_answer(wiring.clients.ce, "Active")
        queue_answers(PAGE_1, PAGE_2)
        wiring.billed_costs.run(NOW)
        after = json.loads(client.http.get(f"/arrays/{DONE}/progress").body)
        running = json.loads(client.http.get(f"/arrays/{RUNNING}/progress").body)
    assert after["cost"]["billed_usd"] == pytest.approx(4.0)
    assert after["cost"]["billed_error_percent"] == pytest.approx(5.0)
    assert after["cost"]["usd"] == pytest.approx(4.2)
    assert "billed_usd" not in running["cost"]
