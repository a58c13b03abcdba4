"""The reconciler: restores the SPEC §5 invariant whatever events were missed.

Lists running managed instances and existing per-instance alarms, creates what is
missing and deletes what is orphaned. Instances found running without a registry
entry are adopted; registry entries still marked live for instances EC2 no longer
runs are brought up to date with what EC2 says now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.alarms import AlarmStore, Watched, plan
from chalicelib.ec2_events import STATE_RANK, StateChange
from chalicelib.instances import LIVE_STATES, Registry, describe, describe_managed_running
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    running: int
    alarms_created_for: int
    alarms_deleted: int
    adopted: int
    corrected: int


def reconcile(
    *,
    settings: Settings,
    ec2: EC2Client,
    registry: Registry,
    alarms: AlarmStore,
    now: datetime,
) -> ReconcileReport:
    """Make alarms and registry match EC2; returns what changed."""
    running = describe_managed_running(ec2, settings)
    watched = [Watched(i, f.array_id) for i, f in running.items()]
    alarm_plan = plan(watched, alarms.list_names())
    alarms.apply(alarm_plan)

    now_ms = int(now.timestamp() * 1000)
    adopted = sum(registry.adopt(running[w.instance_id], now_ms) for w in alarm_plan.create)

    ghosts = [
        row["instance_id"]
        for row in registry.all()
        if row.get("managed")
        and row.get("state") in LIVE_STATES
        and row["instance_id"] not in running
    ]
    corrected = 0
    if ghosts:
        actual = describe(ec2, ghosts)
        for instance_id in ghosts:
            facts = actual.get(instance_id)
            state = facts.state if facts is not None else "terminated"
            if state not in STATE_RANK or state == "running":
                continue
            change = StateChange(now, STATE_RANK[state], instance_id, state, "reconcile")
            if registry.record(change, None, None) is not None:
                corrected += 1
    report = ReconcileReport(
        len(running), len(alarm_plan.create), len(alarm_plan.delete), adopted, corrected
    )
    logger.info("reconciled", extra=report.__dict__)
    return report
