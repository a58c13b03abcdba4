"""`make chaos`, reduced: seeded replays under every fault, through the real handlers
on moto, must keep every invariant; and the checker must report a violation when a
healer is left out on purpose. `make test` replays one small seed; the larger seeds
(marked `chaos`) run in `make chaos`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from chaos.invariants import check, items_lost, report
from chaos.replay import Options, run
from tests.conftest import ROOT

# (seed, instances): the first is `make test`'s (every fault occurs at that size, in
# about 25 CPU seconds); the others, about a minute each, are `make chaos`'s.
SEEDS = (
    pytest.param(11, 40, id="11-40"),
    pytest.param(11, 80, id="11-80", marks=pytest.mark.chaos),
    pytest.param(12, 80, id="12-80", marks=pytest.mark.chaos),
)
FAULTS = (
    "duplicated",
    "dropped state change",
    "dropped stream record",
    "crash",
    "throttled",
    "5xx dynamodb",
    "timeout dynamodb",
    "malformed state change",
    "malformed stream record",
)


@pytest.mark.parametrize(("seed", "instances"), SEEDS)
def test_a_seeded_replay_under_faults_keeps_every_invariant(seed: int, instances: int) -> None:
    world, seen = run(Options(seed=seed, instances=instances))
    checks = check(seen)
    assert all(c.ok for c in checks), report(seed, seen, checks)
    assert items_lost(seen) == set()
    injected = Counter(world.ledger.faults) + Counter(world.http.injected)
    injected.update({f"malformed {k}": n for k, n in world.ledger.malformed_kinds.items()})
    assert all(injected[kind] > 0 for kind in FAULTS), injected
    # Interruptions were delivered, some twice or more, and each counted once.
    assert seen.interruptions_total > 0
    assert world.ledger.deliveries["warning"] > seen.interruptions_total


def test_a_replay_in_fleet_query_mode_keeps_every_invariant() -> None:
    """ALARM_MODE=fleet-query through the deployed wiring: the query alarms stand in for
    the per-instance ones, and the array history is kept, under the same faults."""
    _, seen = run(Options(seed=5, instances=40, alarm_mode="fleet-query"))
    checks = check(seen)
    assert all(c.ok for c in checks), report(5, seen, checks)
    names = {c.name for c in checks}
    assert "fleet-query: both query alarms, no per-instance alarm" in names
    assert seen.query_alarms == seen.query_alarms_wanted != set()
    assert seen.alarmed == set()
    assert seen.running_managed
    assert set(seen.history) == set(seen.summary_counts) != set()


def test_the_checker_reports_summaries_drifting_without_the_recount() -> None:
    _, seen = run(Options(seed=5, instances=40, recount=False))
    by_name = {c.name: c for c in check(seen)}
    assert not by_name["each array summary = full recount"].ok
    assert seen.summary_counts != seen.recount_counts


def test_make_chaos_exits_non_zero_and_prints_the_seed_on_a_violation() -> None:
    """Dropped state changes are healed by the reconciler alone: without it, alarms leak,
    and `make chaos` says which check failed, with the leaked alarms, and how to replay.
    (This one replay also stands for the in-process checker test it replaced. The seed
    picks a replay whose drops leak alarms; the faults are drawn per AWS call, so a
    handler making more calls, as the cost capture does, shifts them.)"""
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "--seed", "6", "--instances", "40", "--skip", "reconciler"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "chaos seed 6" in done.stdout
    [alarms] = [line for line in done.stdout.splitlines() if "] alarm set = running" in line]
    assert alarms.lstrip().startswith("[VIOLATED] alarm set = running managed instances")
    assert "leaked: " in alarms
    assert "replay with: make chaos SEED=6" in done.stdout
