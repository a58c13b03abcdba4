"""The pure parts of the Cost Explorer job (chalicelib.progress.billed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib.progress.billed import billed_by_array, billed_view, error_percent, with_billed


def group(key: str, amount: Any) -> dict[str, Any]:
    return {"Keys": [key], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}


def test_sums_per_array_over_days_and_pages_leaving_out_untagged_and_bad_amounts() -> None:
    pages = [
        {
            "ResultsByTime": [
                {
                    "Groups": [
                        group("spawn:job-array-id$a", "1.25"),
                        group("spawn:job-array-id$", "9"),
                    ]
                }
            ]
        },
        {
            "ResultsByTime": [
                {
                    "Groups": [
                        group("spawn:job-array-id$a", "0.75"),
                        group("spawn:job-array-id$b", "x"),
                    ]
                },
                {
                    "Groups": [
                        group("spawn:job-array-id$b", "NaN"),
                        group("spawn:job-array-id$c", "2"),
                    ]
                },
                {},
            ]
        },
    ]
    assert billed_by_array(pages) == {"a": Decimal("2.00"), "c": Decimal("2")}


def test_error_percent() -> None:
    assert error_percent(4.2, 4.0) == pytest.approx(5.0)
    assert error_percent(3.8, 4.0) == pytest.approx(-5.0)
    assert error_percent(None, 4.0) is None
    assert error_percent(1.0, 0.0) is None


def finished(cost: Any = None) -> dict[str, Any]:
    view: dict[str, Any] = {"array_id": "a", "finished_at": "2026-02-06T03:00:00Z"}
    if cost is not None:
        view["cost"] = cost
    return view


def test_the_bill_joins_the_cost_of_a_finished_array_only() -> None:
    stored = {"billed_usd": 4.0, "as_of": "2026-02-10T06:00:00Z"}
    reads: list[str] = []

    def billed(array_id: str) -> dict[str, Any]:
        reads.append(array_id)
        return stored

    shown = billed_view(finished({"usd": 4.2}), billed)
    assert shown["cost"]["billed_usd"] == 4.0
    assert shown["cost"]["billed_error_percent"] == pytest.approx(5.0)
    assert shown["cost"]["billed_as_of"] == "2026-02-10T06:00:00Z"
    running = {"array_id": "a", "finished_at": None, "cost": {"usd": 1.0}}
    assert billed_view(running, billed) is running
    assert billed_view(finished(), billed) == finished()  # no cost: nothing read
    assert reads == ["a"]


@pytest.mark.parametrize("stored", [None, {}, {"billed_usd": "4"}, {"billed_usd": float("nan")}])
def test_an_unusable_stored_bill_leaves_the_body_as_it_is(stored: Any) -> None:
    view = finished({"usd": 4.2})
    assert with_billed(view, stored) == view


def test_an_unreadable_bill_leaves_the_body_as_it_is() -> None:
    def broken(array_id: str) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="http://dynamodb")

    view = finished({"usd": 4.2})
    assert billed_view(view, broken) == view
