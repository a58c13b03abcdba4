"""The reconciler: restores the invariant (alarms = running managed instances, registry
= EC2) whatever events were missed, every 15 minutes within a time budget.

It lists alarms before instances, so an alarm the lifecycle makes in between is never
an orphan; stamps each registry correction with the time taken before EC2 was listed,
so a real event always wins; and leaves recent launches to the lifecycle (the grace
plus the queue's backlog). Details: docs/architecture.md ("The reconciler") and
docs/alarm-modes.md (what it does in `fleet-query`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from chalicelib.alarms.fleet_query import query_selects
from chalicelib.alarms.modes import AlarmModes
from chalicelib.alarms.per_instance import (
    ALARM_KINDS,
    AlarmPlan,
    AlarmStore,
    Watched,
    alarm_names,
    plan,
)
from chalicelib.core.settings import Settings
from chalicelib.cost.runs import RunLog, transition_ms
from chalicelib.fleet.events import STATE_RANK, StateChange, epoch_ms
from chalicelib.fleet.registry import (
    LIVE_STATES,
    InstanceFacts,
    Registry,
    cost_drivers,
    describe,
    describe_managed_running,
)
from chalicelib.fleet.stats import Stats
from chalicelib.progress.workers import ProgressRows

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    running: int
    alarms_created_for: int
    alarms_deleted: int
    deferred: int
    adopted: int
    corrected: int
    mode: str = "per-instance"
    left_to_lifecycle: int = 0
    health_corrected: int = 0
    query_alarms_deleted: int = 0


def within_budget(alarm_plan: AlarmPlan, budget_seconds: float, rate: float) -> AlarmPlan:
    """As much of the plan as paced calls can do in the budget; deletes go first (each
    call removes up to 100 names), creations take what time is left."""
    if budget_seconds == float("inf"):
        return alarm_plan
    delete_calls = -(-len(alarm_plan.delete) // 100)
    left = max(0.0, budget_seconds - delete_calls / rate)
    fits = int(left * rate) // len(ALARM_KINDS)
    return replace(alarm_plan, create=alarm_plan.create[:fits])


def grace_ms(settings: Settings, backlog: int) -> int:
    """How long after its run starts an instance is left to the lifecycle: the grace
    period plus the time the lifecycle needs to drain `backlog` queued messages."""
    drain = backlog * len(ALARM_KINDS) / settings.alarm_api_tps
    return int((settings.reconcile_grace_seconds + drain) * 1000)


def run_started_ms(facts: InstanceFacts, row: dict[str, object] | None) -> int | None:
    """When the instance's current run began: the registry's, else EC2's launch time."""
    since = (row or {}).get("running_since_ms")
    if isinstance(since, int | Decimal):
        return int(since)
    if facts.launch_time:
        return epoch_ms(datetime.fromisoformat(facts.launch_time))
    return None


def recent_launches(
    running: dict[str, InstanceFacts],
    rows: dict[str, dict[str, object]],
    now_ms: int,
    window_ms: int,
) -> set[str]:
    """The running instances whose run began within `window_ms` of `now_ms` (or whose
    start is unknown: none is known to be late): they are the lifecycle's."""
    if window_ms <= 0:
        return set()
    recent = set()
    for instance_id, facts in running.items():
        started = run_started_ms(facts, rows.get(instance_id))
        if started is not None and now_ms - started < window_ms:
            recent.add(instance_id)
    return recent


def reconcile(
    *,
    settings: Settings,
    ec2: EC2Client,
    registry: Registry,
    alarms: AlarmStore,
    now: datetime,
    budget_seconds: float = float("inf"),
    workers: ProgressRows | None = None,
    backlog: int | None = None,
    modes: AlarmModes | None = None,
    arrays: Stats | None = None,
    runs: RunLog | None = None,
) -> ReconcileReport:
    """Make alarms and registry match EC2; returns what changed. `workers` (the progress
    table) is where the workers of instances found ended are marked lost. `backlog` is
    the lifecycle queue's message count: given, recent launches are left to the
    lifecycle (see the module docstring); None leaves nothing (grace off). `modes`
    switches between alarm modes; None keeps per-instance alarms. `arrays` is where the
    arrays of instances it adopts or finds running are registered, as the lifecycle
    would have done. `runs` is where the billable runs events missed are noted."""
    existing = alarms.list_names()
    # Pending ones come in the same listings: recorded (with their tags) when their
    # events were missed, as the lifecycle records them; alarms are for running ones.
    live = describe_managed_running(ec2, settings, LIVE_STATES)
    running = {i: f for i, f in live.items() if f.state == "running"}
    pending = {i: f for i, f in live.items() if f.state == "pending"}
    rows = {str(row["instance_id"]): row for row in registry.all()}
    now_ms = epoch_ms(now)
    mode, query_alarms = "per-instance", False
    if modes is not None:
        query_alarms = bool(modes.fleet_alarms.describe())
        if modes.wanted == "fleet-query" and modes.prepare(running)["alarm_mode"] == "fleet-query":
            query_alarms = modes.fleet_alarms.all_exist()
            mode = "fleet-query" if query_alarms else "per-instance"

    left = health = query_deleted = 0
    window = grace_ms(settings, backlog) if backlog is not None else 0
    recent = recent_launches(running, rows, now_ms, window)
    if mode == "fleet-query":
        # Both query alarms exist: only the managed instances their query does not
        # select (e.g. tagged only `spawn=true`) keep per-instance alarms.
        watched = [
            Watched(i, f.array_id)
            for i, f in running.items()
            if not query_selects(f.tags, settings)
        ]
        leave = recent
    else:
        watched = [Watched(i, f.array_id) for i, f in running.items()]
        # While query alarms remain (switching back), recent launches get their alarms
        # too: the query alarms go only once every running instance has its own.
        leave = set() if query_alarms else recent
    full_plan = plan(watched, existing)
    graced = tuple(w for w in full_plan.create if w.instance_id not in leave)
    left = len(full_plan.create) - len(graced)
    full_plan = replace(full_plan, create=graced)
    alarm_plan = within_budget(full_plan, budget_seconds, alarms.put_limiter.rate)
    alarms.apply(alarm_plan)
    if mode == "fleet-query":
        assert modes is not None
        selected = {i: f for i, f in running.items() if query_selects(f.tags, settings)}
        health = _health_from_contributors(modes, registry, rows, selected, now)
    elif query_alarms and modes is not None:
        query_deleted = _retire_query_alarms(modes, alarms, running)

    adopted = corrected = 0
    missed: list[InstanceFacts] = []
    for instance_id, facts in running.items():
        row = rows.get(instance_id)
        if instance_id in recent:
            # Its event is on its way: a correction stamped `now` would make the
            # lifecycle take that event for stale and never put its alarms.
            continue
        if row is None or "last_event_ms" not in row:
            adopted += registry.adopt(facts, now_ms)
        elif row.get("state") != "running":
            corrected += _record(registry, instance_id, "running", now, facts)
        elif row.get("managed") is not True:
            corrected += _mark_managed(registry, facts)
        else:
            continue
        missed.append(facts)
    launching = recent_launches(pending, rows, now_ms, window)
    for instance_id, facts in pending.items():
        row = rows.get(instance_id)
        if instance_id in launching:
            continue
        if row is None or "last_event_ms" not in row:
            adopted += registry.adopt(facts, now_ms)
        elif row.get("state") == "pending" and row.get("managed") is not True:
            corrected += _mark_managed(registry, facts)
        else:
            continue
        missed.append(facts)
    if arrays is not None:
        arrays.register_arrays(missed, settings)
    if runs is not None:
        # A run whose running event was lost began at EC2's LaunchTime (its last start).
        started = [
            (f.instance_id, "running", epoch_ms(datetime.fromisoformat(f.launch_time)))
            for f in missed
            if f.state == "running" and f.launch_time
        ]
        drivers = {f.instance_id: cost_drivers(f, settings) for f in missed}
        runs.note_changes(ec2, started, [i for i, _, _ in started], drivers)
    corrected += _correct_ghosts(ec2, registry, rows, running, now, workers, runs)
    report = ReconcileReport(
        running=len(running),
        alarms_created_for=len(alarm_plan.create),
        alarms_deleted=len(alarm_plan.delete),
        deferred=len(full_plan.create) - len(alarm_plan.create),
        adopted=adopted,
        corrected=corrected,
        mode=mode,
        left_to_lifecycle=left,
        health_corrected=health,
        query_alarms_deleted=query_deleted,
    )
    logger.info("reconciled", extra=report.__dict__)
    return report


def _retire_query_alarms(
    modes: AlarmModes, alarms: AlarmStore, running: dict[str, InstanceFacts]
) -> int:
    """Delete the query alarms once a fresh listing shows every running managed
    instance with both its per-instance alarms; else keep them for the next run."""
    names = alarms.list_names()
    unwatched = [i for i in running if not names.issuperset(alarm_names(i))]
    if unwatched:
        logger.info(
            "query alarms kept: instances still without their own alarms",
            extra={"instances": len(unwatched)},
        )
        return 0
    return len(modes.fleet_alarms.delete())


def _health_from_contributors(
    modes: AlarmModes,
    registry: Registry,
    rows: dict[str, dict[str, object]],
    running: dict[str, InstanceFacts],
    now: datetime,
) -> int:
    """Bring each running instance the query selects (`running`) in line with the contributors
    in ALARM (a lost contributor event, or one that never came, is corrected), or, past
    CloudWatch's cap of 100 contributors in ALARM, with the failing instances counted
    from the data (`FleetQueryAlarms.health`). Each write is stamped (the contributor's
    transition, or `now`) and made only over an older record, so an event that lands
    meanwhile wins."""
    now_ms = epoch_ms(now)
    in_alarm = modes.fleet_alarms.health(running, now)
    if in_alarm is None:
        return 0
    corrected = 0
    for instance_id in running:
        row = rows.get(instance_id)
        if not row or "last_event_ms" not in row:
            continue
        for check, alarmed in in_alarm.items():
            recorded = row.get(f"check_{check}_state")
            if instance_id in alarmed and recorded != "ALARM":
                since = alarmed[instance_id] or now_ms
                corrected += _set_check(registry, instance_id, check, "ALARM", since)
            elif instance_id not in alarmed and recorded == "ALARM":
                corrected += _set_check(registry, instance_id, check, "OK", now_ms)
    return corrected


def _set_check(registry: Registry, instance_id: str, check: str, state: str, at_ms: int) -> int:
    """Record a check's state unless a newer change was recorded meanwhile."""
    state_key, time_key = f"check_{check}_state", f"check_{check}_ms"
    written = registry.update(
        instance_id,
        {state_key: state, time_key: at_ms},
        f"attribute_exists(#last_event_ms) AND (attribute_not_exists(#{time_key})"
        f" OR #{time_key} < :{time_key})",
    )
    return 0 if written is None else 1


def _mark_managed(registry: Registry, facts: InstanceFacts) -> int:
    """Tags added after the instance came up: from now on it is watched (and no longer
    expires from the registry), unless it has been terminated since EC2 was read: a gone
    instance's row keeps its expiry."""
    values = {"managed": True, **facts.membership()}
    written = registry.update(
        facts.instance_id,
        values,
        "#state <> :terminated",
        {"terminated": "terminated"},
        remove=["expires_at"],
    )
    return 0 if written is None else 1


def _record(
    registry: Registry,
    instance_id: str,
    state: str,
    now: datetime,
    facts: InstanceFacts | None = None,
    workers: ProgressRows | None = None,
) -> int:
    """Record the state EC2 showed at `now`, if nothing newer is recorded."""
    change = StateChange(now, STATE_RANK[state], instance_id, state, "reconcile")
    managed = True if facts is not None else None
    previous = registry.record(change, facts, managed)
    if previous is None:
        return 0
    if state == "terminated" and previous.get("managed") and workers is not None:
        workers.mark_gone_instance({**previous, "instance_id": instance_id}, now)
    return 1


def _correct_ghosts(
    ec2: EC2Client,
    registry: Registry,
    rows: dict[str, dict[str, object]],
    running: dict[str, InstanceFacts],
    now: datetime,
    workers: ProgressRows | None,
    runs: RunLog | None = None,
) -> int:
    """Managed rows not in the running listing whose state EC2 no longer agrees with."""
    ghosts = [
        instance_id
        for instance_id, row in rows.items()
        # Managed, or not known yet (its running event was lost): not known unmanaged.
        if row.get("managed") is not False
        and row.get("state") in STATE_RANK
        and row.get("state") != "terminated"
        and instance_id not in running
    ]
    if not ghosts:
        return 0
    actual = describe(ec2, ghosts)
    corrected = 0
    for instance_id in ghosts:
        facts = actual.get(instance_id)
        state = facts.state if facts is not None else "terminated"
        # Running but not listed: it started after the listing (its event is on the way)
        # or is no longer managed; the lifecycle handles both.
        if state not in STATE_RANK or state == "running" or state == rows[instance_id]["state"]:
            continue
        corrected += _record(registry, instance_id, state, now, workers=workers)
        if runs is not None:
            # The run ended when EC2 says it did, else (gone from EC2) by now.
            reason = transition_ms(facts.state_reason if facts is not None else None)
            runs.note(instance_id, state, reason or epoch_ms(now))
    return corrected
