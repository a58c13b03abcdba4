"""The reconciler: restores the SPEC §5 invariant whatever events were missed.

Lists the per-instance alarms first and the running managed instances second, so an
alarm made by the lifecycle handler in between is never taken for an orphan. Then it
creates what is missing and deletes what is orphaned (within the run's time budget:
the rest is left to the next run), and brings the registry in line with EC2, in both
directions:

- running managed instances it lacks are adopted; ones it holds in another state
  (`stopped` after a restart whose `running` was lost, `pending` whose `running` came
  before `DescribeInstances` showed the instance) are recorded `running` with EC2's
  facts, so `/fleet` and fleet health count them; ones it holds as unmanaged are
  marked managed (unless terminated meanwhile, which keeps its expiry);
- instances it holds (managed, or not yet known unmanaged) in any state but `terminated`
  that are not in the listing get EC2's state when it differs (`terminated`, with its
  expiry, when EC2 no longer knows them; the worker of a managed one that ended is
  marked lost, as the lifecycle would have done).

Every correction is a registry write conditional on being newer than what is recorded,
stamped with `now`, the time taken *before* EC2 was listed: a real event for a change
EC2 made after the listing carries a later time, so whichever lands second, the event
wins and a reconcile never overwrites it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.alarms import ALARM_KINDS, AlarmPlan, AlarmStore, Watched, plan
from chalicelib.ec2_events import STATE_RANK, StateChange, epoch_ms
from chalicelib.instances import (
    InstanceFacts,
    Registry,
    describe,
    describe_managed_running,
)
from chalicelib.settings import Settings
from chalicelib.stats import Stats
from chalicelib.summaries import ProgressRows

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


def within_budget(alarm_plan: AlarmPlan, budget_seconds: float, rate: float) -> AlarmPlan:
    """As much of the plan as paced calls can do in the budget; deletes go first (each
    call removes up to 100 names), creations take what time is left."""
    if budget_seconds == float("inf"):
        return alarm_plan
    delete_calls = -(-len(alarm_plan.delete) // 100)
    left = max(0.0, budget_seconds - delete_calls / rate)
    fits = int(left * rate) // len(ALARM_KINDS)
    return replace(alarm_plan, create=alarm_plan.create[:fits])


def reconcile(
    *,
    settings: Settings,
    ec2: EC2Client,
    registry: Registry,
    alarms: AlarmStore,
    now: datetime,
    budget_seconds: float = float("inf"),
    workers: ProgressRows | None = None,
    arrays: Stats | None = None,
) -> ReconcileReport:
    """Make alarms and registry match EC2; returns what changed. `workers` (the progress
    table) is where the workers of instances found ended are marked lost; `arrays` is
    where the arrays of instances it adopts or finds running are registered, as the
    lifecycle would have done."""
    existing = alarms.list_names()
    running = describe_managed_running(ec2, settings)
    watched = [Watched(i, f.array_id) for i, f in running.items()]
    full_plan = plan(watched, existing)
    alarm_plan = within_budget(full_plan, budget_seconds, alarms.put_limiter.rate)
    alarms.apply(alarm_plan)

    rows = {str(row["instance_id"]): row for row in registry.all()}
    now_ms = epoch_ms(now)
    adopted = corrected = 0
    missed: list[InstanceFacts] = []
    for instance_id, facts in running.items():
        row = rows.get(instance_id)
        if row is None or "last_event_ms" not in row:
            adopted += registry.adopt(facts, now_ms)
        elif row.get("state") != "running":
            corrected += _record(registry, instance_id, "running", now, facts)
        elif row.get("managed") is not True:
            corrected += _mark_managed(registry, facts)
        else:
            continue
        missed.append(facts)
    if arrays is not None:
        arrays.register_arrays(missed, settings)
    corrected += _correct_ghosts(ec2, registry, rows, running, now, workers)
    report = ReconcileReport(
        running=len(running),
        alarms_created_for=len(alarm_plan.create),
        alarms_deleted=len(alarm_plan.delete),
        deferred=len(full_plan.create) - len(alarm_plan.create),
        adopted=adopted,
        corrected=corrected,
    )
    logger.info("reconciled", extra=report.__dict__)
    return report


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
    return corrected
