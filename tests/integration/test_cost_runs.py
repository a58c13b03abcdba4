"""Runs the events missed, noted by the reconciler from what EC2 says (moto)."""

from __future__ import annotations

import boto3

from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.cost.runs import transition_ms
from local.provision import Provisioned
from tests.integration.conftest import MANAGED, Fleet, container


def test_the_reconciler_notes_runs_whose_events_were_lost(
    session: boto3.Session, infra: Provisioned
) -> None:
    fleet = Fleet(session, infra)
    [instance] = fleet.launch(tags=MANAGED)
    wiring = container(Clients(session), Settings())
    # The running event was lost: the run starts at EC2's LaunchTime.
    wiring.reconcile_with(float("inf"), None)
    described = fleet.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]
    launched = described["Instances"][0]["LaunchTime"]
    row = wiring.registry.get(instance)
    assert row is not None
    assert row["cost_starts"] == {int(launched.timestamp()) * 1000}
    assert row["cost_volumes"]  # the root volume, read with DescribeVolumes
    assert row["cost_facts"]["managed"] is True
    # The stop was lost too: it ends when StateTransitionReason says.
    fleet.ec2.stop_instances(InstanceIds=[instance])
    reason = fleet.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][
        0
    ]["StateTransitionReason"]
    wiring.reconcile_with(float("inf"), None)
    row = wiring.registry.get(instance)
    assert row is not None
    assert row["state"] == "stopped"
    assert row["cost_ends"] == {transition_ms(reason)}


def test_transition_times_are_read_from_ec2s_reason() -> None:
    assert transition_ms("User initiated (2026-12-04 02:13:16 GMT)") == 1796350396000
    assert transition_ms("Service initiated") is None
    assert transition_ms(None) is None
