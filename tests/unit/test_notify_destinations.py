"""The notify secret's destinations: each entry checked alone, filters, per-owner routing."""

from __future__ import annotations

import json
import logging

import pytest

from chalicelib.notify.destinations import DestinationBook, accepts, parse_destinations
from chalicelib.notify.model import Notice

SLACK_URL = "https://hooks.slack.com/services/T000/B000/SECRETPART"


def notice(**overrides: object) -> Notice:
    fields: dict[str, object] = {
        "notice_id": "n",
        "kind": "alert",
        "event_type": "spot_interruption",
        "severity": "warning",
        "subject": "s",
        "text": "t",
        "array_id": "render-20260127-a1b2c3",
        "array_name": "render",
        "owner": "alice",
    }
    fields.update(overrides)
    return Notice(**fields)  # type: ignore[arg-type]


def secret(*entries: dict[str, object]) -> str:
    return json.dumps({"destinations": list(entries)})


def test_a_bad_entry_is_skipped_with_its_reason_and_the_good_ones_stay() -> None:
    text = secret(
        {"name": "ops", "kind": "slack", "url": SLACK_URL},
        {"name": "bad", "kind": "slack", "url": "ftp://example.com/x"},
        {"name": "hook", "kind": "webhook", "url": "https://example.com/h"},
        {"name": "ops", "kind": "discord", "url": "https://discord.com/api/webhooks/1/x"},
        {"name": "x", "kind": "pager", "url": SLACK_URL},
    )

    found, problems = parse_destinations(text)

    assert [d.name for d in found] == ["ops"]
    assert len(problems) == 4
    assert "https://" in problems[0]
    assert "signing_key" in problems[1]
    assert "earlier destination" in problems[2]
    assert "kind" in problems[3]
    assert all("SECRETPART" not in p for p in problems)


def test_filters_take_only_what_they_name() -> None:
    found, _ = parse_destinations(
        secret(
            {
                "name": "a",
                "kind": "slack",
                "url": SLACK_URL,
                "event_types": ["spot_interruption"],
                "min_severity": "warning",
                "array_name": "rend*",
            }
        )
    )
    (destination,) = found

    assert accepts(destination, notice())
    assert not accepts(destination, notice(event_type="array_failing"))
    assert not accepts(destination, notice(severity="info"))
    assert not accepts(destination, notice(array_name="train"))
    assert not accepts(destination, notice(array_name=None))
    assert accepts(destination, notice(severity="critical"))


def test_user_a_destination_never_takes_user_b_array_nor_fleet_wide_notices() -> None:
    value = secret(
        {"name": "alice", "kind": "slack", "url": SLACK_URL, "owner": "alice"},
        {"name": "bob", "kind": "slack", "url": SLACK_URL, "owner": "bob"},
        {"name": "all", "kind": "slack", "url": SLACK_URL},
    )
    book = DestinationBook(lambda _id, _age: value, "spawn-fleet-monitor/notify")

    for_alice = [d.name for d in book.matching(notice(owner="alice"))]
    for_bob = [d.name for d in book.matching(notice(owner="bob"))]
    fleet_wide = [d.name for d in book.matching(notice(owner=None, array_id=None))]

    assert for_alice == ["alice", "all"]
    assert for_bob == ["bob", "all"]
    assert fleet_wide == ["all"]


def test_a_missing_secret_means_no_destinations_and_one_read_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    now = [1000.0]

    def missing(secret_id: str, max_age: int) -> str:
        calls.append(secret_id)
        raise RuntimeError("ResourceNotFoundException")

    book = DestinationBook(missing, "spawn-fleet-monitor/notify", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert book.all() == []
        now[0] += 30
        assert book.all() == []
        now[0] += 31
        assert book.all() == []

    assert len(calls) == 2
    assert "not readable" in caplog.text


def test_an_unusable_secret_is_logged_without_its_value(caplog: pytest.LogCaptureFixture) -> None:
    book = DestinationBook(lambda _id, _age: "not json " + SLACK_URL, "s")

    with caplog.at_level(logging.ERROR):
        assert book.all() == []

    (record,) = caplog.records
    shown = caplog.text + repr(record.__dict__)
    assert "SECRETPART" not in shown
    assert record.__dict__["reason"] == "the secret is not JSON"
