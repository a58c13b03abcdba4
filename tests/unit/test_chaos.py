"""The chaos replay's pure parts: the seeded history and the invariant checker."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from chaos.history import generate
from chaos.invariants import Observed, check, items_lost

ALARMS = "alarm set = running managed instances"
COUNTS = "interruption counts = distinct interrupted instances"
SUMMARIES = "each array summary = full recount"
EVENTS = "every delivered event processed or kept with a reason"
MALFORMED = "each malformed input: exactly one logged error"
ALERTS = "no alert sent twice for one episode"
QUERY = "fleet-query: both query alarms, no per-instance alarm"
HISTORY = "each summarised array has a consistent history"


def test_a_seed_gives_one_history_and_another_seed_another() -> None:
    assert generate(3, 200) == generate(3, 200)
    assert generate(3, 200) != generate(4, 200)


def test_a_history_covers_a_fleet_s_life() -> None:
    history = generate(1, 1000)
    assert sum(a.size for a in history.arrays) >= 1000
    assert len(history.arrays) >= 3
    kinds = Counter(step.kind for step in history.steps)
    for kind in ("launch", "running", "stop", "start", "terminate", "warning", "rebalance"):
        assert kinds[kind] > 0, kind
    assert kinds["row"] > kinds["launch"]
    assert any(step.data.get("garbage") for step in history.steps)
    copies = Counter((s.array, s.index) for s in history.steps if s.kind == "warning")
    assert max(copies.values()) >= 2  # some interruptions are warned about 2-3 times
    assert [s.at for s in history.steps] == sorted(s.at for s in history.steps)
    assert all(s.at < history.horizon for s in history.steps)
    assert any(a.opted_out for a in history.arrays)


def healthy() -> Observed:
    return Observed(
        alarmed={"i-1", "i-2"},
        running_managed={"i-1", "i-2"},
        interruptions_by_array={"a": 1},
        interruptions_total=1,
        interrupted_by_array={"a": {"i-3"}},
        summary_counts={"a": {"running": 2, "completed": 1}},
        recount_counts={"a": {"running": 2, "completed": 1}},
        rows_in_table={"a": 3},
        rows_written={"a": 3},
        delivered={"e1", "e2", "e3"},
        processed={"e1", "e2"},
        destination={"e3": "handler crashed"},
        malformed_handed={"m1": 2},
        logged=[
            ("dropping malformed state-change message", "m1", None),
            ("dropping malformed state-change message", "m1", None),
            ("creating alarms failed", None, None),
        ],
        alerts=[
            {"event_type": "spot_interruption", "details": {"instance_id": "i-3"}},
            {"event_type": "array_finished", "array_id": "a"},
            {"event_type": "workers_stalled", "array_id": "a"},
            {"event_type": "workers_stalled", "array_id": "a"},
        ],
        history={"a": [(0, 3, 1), (60, 3, 3)]},
        ended_at=120,
    )


def failing(seen: Observed) -> set[str]:
    return {c.name for c in check(seen) if not c.ok}


def test_a_healthy_state_passes_every_invariant() -> None:
    assert failing(healthy()) == set()
    assert items_lost(healthy()) == set()


def test_a_leaked_or_missing_alarm_is_reported() -> None:
    assert failing(replace(healthy(), alarmed={"i-1", "i-2", "i-9"})) == {ALARMS}
    assert failing(replace(healthy(), alarmed={"i-1"})) == {ALARMS}


def test_a_miscount_per_array_or_fleet_wide_is_reported() -> None:
    assert failing(replace(healthy(), interruptions_by_array={"a": 2})) == {COUNTS}
    assert failing(replace(healthy(), interruptions_total=2)) == {COUNTS}


def test_a_summary_that_drifted_from_its_rows_is_reported() -> None:
    drifted = {"a": {"running": 1, "completed": 2}}
    assert failing(replace(healthy(), summary_counts=drifted)) == {SUMMARIES}
    assert failing(replace(healthy(), rows_in_table={"a": 2})) == {SUMMARIES}


def test_an_event_neither_processed_nor_kept_is_an_item_lost() -> None:
    lost = replace(healthy(), destination={})
    assert failing(lost) == {EVENTS}
    assert items_lost(lost) == {"e3"}


def test_a_malformed_input_logged_twice_or_never_and_a_good_one_rejected_are_reported() -> None:
    once = replace(healthy(), logged=healthy().logged[:1])
    assert failing(once) == {MALFORMED}
    stray = [*healthy().logged, ("skipping unusable stream record", "rec-5", None)]
    assert failing(replace(healthy(), logged=stray)) == {MALFORMED}
    by_invocation = replace(
        healthy(),
        malformed_handed={"inv-1": 1},
        logged=[("malformed warning", None, "inv-1")],
    )
    assert failing(by_invocation) == set()


def test_an_alert_sent_twice_for_one_episode_or_an_interruption_not_alerted_is_reported() -> None:
    alerts = healthy().alerts
    assert failing(replace(healthy(), alerts=[*alerts, alerts[1]])) == {ALERTS}
    assert failing(replace(healthy(), alerts=[*alerts, alerts[0]])) == {ALERTS}
    assert failing(replace(healthy(), alerts=alerts[1:])) == {ALERTS}


def test_a_resend_after_a_crash_right_after_publish_is_shown_apart_not_a_violation() -> None:
    alerts = healthy().alerts
    resent = replace(healthy(), alerts=[*alerts, alerts[0]], crashes_after_publish=1)
    assert failing(resent) == set()
    [result] = [c for c in check(resent) if c.name == ALERTS]
    assert "resent after a crash right after Publish: 1" in result.figures
    # One crash right after Publish explains one resend, not two.
    twice = replace(resent, alerts=[*alerts, alerts[0], alerts[0]])
    assert failing(twice) == {ALERTS}


def test_in_fleet_query_mode_a_left_or_absent_alarm_is_reported() -> None:
    wanted = {"spawn-fleet-status-check", "spawn-fleet-system-check"}
    fleet_query = replace(
        healthy(), alarm_mode="fleet-query", alarmed=set(), query_alarms_wanted=wanted
    )
    assert failing(replace(fleet_query, query_alarms=wanted)) == set()
    assert failing(replace(fleet_query, query_alarms={"spawn-fleet-status-check"})) == {QUERY}
    assert failing(replace(fleet_query, query_alarms=wanted, alarmed={"i-1"})) == {QUERY}
    assert failing(replace(fleet_query, query_alarms=set(), query_alarms_wanted=set())) == {QUERY}


def test_an_array_without_history_or_with_a_wrong_one_is_reported() -> None:
    assert failing(replace(healthy(), history={})) == {HISTORY}
    assert failing(replace(healthy(), history={"a": [(60, 3, 3), (0, 3, 1)]})) == {HISTORY}
    assert failing(replace(healthy(), history={"a": [(0, 3, 1), (600, 3, 3)]})) == {HISTORY}
    assert failing(replace(healthy(), history={"a": [(0, 3, 9)]})) == {HISTORY}
