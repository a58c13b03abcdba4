"""`spawn-monitor capacity --type c5.xlarge` against the local stack (SPEC §15).

History is made the way AWS makes it: instances launched in three zones, `running`
events three hours old and a spot interruption warning sent to the default bus; the
fleet tick counts the live runs. moto does not implement `GetSpotPlacementScores`, so
the CLI, seeing a local EC2 endpoint, ranks with its labelled sample scores (in AWS's
documented shape) and says so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually
from tests.e2e.test_cli import cli
from tests.e2e.test_local_stack import TAGS, alarms_of, put_ec2_event, running

pytestmark = pytest.mark.e2e
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


def launch_in(stack: Stack, zone: str) -> str:
    reservation = stack.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        InstanceType="c5.xlarge",
        Placement={"AvailabilityZone": zone},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
        ],
    )
    return str(reservation["Instances"][0]["InstanceId"])


def c5_history(stack: Stack) -> dict[str, dict[str, Any]]:
    status, body = stack.get("/capacity?instance_type=c5.xlarge")
    assert status == 200, body
    return {e["availability_zone"]: e for e in body["capacity"]}


def test_capacity_prints_zones_ranked_by_score_and_the_fleets_own_rate(stack: Stack) -> None:
    started = datetime.now(UTC) - timedelta(hours=3)
    instances = {zone: launch_in(stack, zone) for zone in ZONES}
    for instance in instances.values():
        running(stack, instance, started)
    for instance in instances.values():
        eventually(lambda i=instance: len(alarms_of(stack, i)) == 2, timeout=10)
    put_ec2_event(
        stack,
        "ec2-spot-interruption-warning.json",
        {"instance-id": instances["us-east-1a"], "instance-action": "terminate"},
    )

    def counted() -> bool:
        seen = c5_history(stack)
        return (
            all(seen.get(z, {}).get("instance_hours", 0) >= 2.9 for z in ZONES)
            and seen["us-east-1a"]["interruptions"] == 1
        )

    eventually(counted, timeout=20)

    result = cli(stack, "capacity", "--type", "c5.xlarge")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ranked = [z for line in lines for z in [_zone_in(line)] if z]
    # The sample scores use1-az1 (moto's us-east-1b) 9, use1-az6 (a) 8, use1-az2 (c) 7.
    assert ranked[:3] == ["us-east-1b", "us-east-1a", "us-east-1c"], result.stdout
    assert "SAMPLE scores, not EC2's" in " ".join(result.stdout.split())
    assert lines[-1].startswith(
        "Launch c5.xlarge in us-east-1b: placement score 9/10; 0 interruptions per 100 "
    )

    as_json = cli(stack, "capacity", "--type", "c5.xlarge", "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["schema_version"] == 1
    assert document["placement_source"] == "sample"
    assert document["instance_types"] == ["c5.xlarge"]
    top = {r["availability_zone"]: r for r in document["ranked"]}
    assert [r["availability_zone"] for r in document["ranked"][:3]] == ranked[:3]
    assert top["us-east-1a"]["interruptions"] == 1
    assert top["us-east-1a"]["rate_rank"] == 3  # the only zone with an interruption
    assert top["us-east-1a"]["interruptions_per_100h"] == pytest.approx(
        100 / top["us-east-1a"]["instance_hours"], abs=1e-2
    )


def _zone_in(line: str) -> str | None:
    cells = [c.strip() for c in line.replace("│", "|").split("|")]
    return next((c for c in cells if c.startswith("us-east-1") and len(c) == 10), None)
