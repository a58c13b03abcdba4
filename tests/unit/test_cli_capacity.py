"""`spawn-monitor capacity`: placement scores and the fleet's rates, ranked.

moto does not implement `GetSpotPlacementScores` (5.2: "not implemented"), so EC2's
answers here come from botocore's `Stubber`, in the shape the EC2 API reference
documents (`SpotPlacementScores: [{Region, AvailabilityZoneId, Score}]`, `NextToken`).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from spawn_monitor.capacity import placement_scores, rank, recommendation

ZONES = {
    "AvailabilityZones": [
        {"ZoneName": "us-east-1a", "ZoneId": "use1-az6", "RegionName": "us-east-1"},
        {"ZoneName": "us-east-1b", "ZoneId": "use1-az1", "RegionName": "us-east-1"},
        {"ZoneName": "us-east-1c", "ZoneId": "use1-az2", "RegionName": "us-east-1"},
    ]
}
HISTORY = [
    {  # the best score but a high interruption rate
        "instance_type": "c5.xlarge",
        "availability_zone": "us-east-1b",
        "instance_hours": 100.0,
        "interruptions": 8,
        "interruptions_per_100h": 8.0,
        "launch_failures": {"InsufficientInstanceCapacity": 2},
    },
    {
        "instance_type": "c5.xlarge",
        "availability_zone": "us-east-1a",
        "instance_hours": 200.0,
        "interruptions": 1,
        "interruptions_per_100h": 0.5,
        "launch_failures": {},
    },
    {  # another type: not asked for
        "instance_type": "m5.large",
        "availability_zone": "us-east-1c",
        "instance_hours": 50.0,
        "interruptions": 0,
        "interruptions_per_100h": 0.0,
        "launch_failures": {},
    },
]


class FakeSession:
    """A session whose EC2 clients are the stubbed ones given (one per call)."""

    def __init__(self, *clients: Any) -> None:
        self.clients = list(clients)
        self.region_name = "us-east-1"

    def client(self, service: str, region_name: str | None = None) -> Any:
        assert service == "ec2"
        return self.clients.pop(0)


def ec2(endpoint: str | None = None) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint)


def test_scores_are_read_page_by_page_and_zone_ids_named() -> None:
    scores_client, zones_client = ec2(), ec2()
    with Stubber(scores_client) as scores, Stubber(zones_client) as zones:
        wanted = {
            "InstanceTypes": ["c5.xlarge"],
            "TargetCapacity": 20,
            "SingleAvailabilityZone": True,
            "RegionNames": ["us-east-1"],
        }
        scores.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az1", "Score": 9}
                ],
                "NextToken": "page-2",
            },
            wanted,
        )
        scores.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": 6},
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az2", "Score": 3},
                ]
            },
            {**wanted, "NextToken": "page-2"},
        )
        zones.add_response("describe_availability_zones", ZONES, {"AllAvailabilityZones": False})
        found = placement_scores(
            FakeSession(scores_client, zones_client),  # type: ignore[arg-type]
            ["c5.xlarge"],
            ["us-east-1"],
            20,
            by_zone=True,
        )
        scores.assert_no_pending_responses()
    assert found.source == "ec2"
    assert found.by_place == {
        ("us-east-1", "us-east-1b"): 9,
        ("us-east-1", "us-east-1a"): 6,
        ("us-east-1", "us-east-1c"): 3,
    }
    assert found.zone_ids[("us-east-1", "us-east-1b")] == "use1-az1"


def test_zones_rank_by_score_then_by_the_fleets_rate_with_one_line_of_advice() -> None:
    scores_client, zones_client = ec2(), ec2()
    with Stubber(scores_client) as scores, Stubber(zones_client) as zones:
        scores.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az1", "Score": 7},
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": 7},
                    {"Region": "us-east-1", "AvailabilityZoneId": "use1-az2", "Score": 9},
                ]
            },
        )
        zones.add_response("describe_availability_zones", ZONES)
        found = placement_scores(
            FakeSession(scores_client, zones_client),  # type: ignore[arg-type]
            ["c5.xlarge"],
            ["us-east-1"],
            1,
            by_zone=True,
        )
    rows = rank(HISTORY, found, ["c5.xlarge"], ["us-east-1"], by_zone=True)
    assert [r["availability_zone"] for r in rows] == ["us-east-1c", "us-east-1a", "us-east-1b"]
    assert [r["score_rank"] for r in rows] == [1, 2, 2]
    assert [r["rate_rank"] for r in rows] == [None, 1, 2]
    assert rows[2]["launch_failures"] == {"InsufficientInstanceCapacity": 2}
    assert rows[0]["instance_hours"] == 0  # m5.large's history is not c5.xlarge's
    assert recommendation(rows, ["c5.xlarge"]) == (
        "Launch c5.xlarge in us-east-1c: placement score 9/10; "
        "no fleet history there in the last 7 days."
    )
    assert recommendation(rows[1:], ["c5.xlarge"]) == (
        "Launch c5.xlarge in us-east-1a: placement score 7/10; 0.5 interruptions per "
        "100 instance-hours over 200 h in the last 7 days."
    )


def test_regions_rank_with_the_history_of_their_zones_summed() -> None:
    client = ec2()
    with Stubber(client) as scores:
        scores.add_response(
            "get_spot_placement_scores",
            {
                "SpotPlacementScores": [
                    {"Region": "us-east-1", "Score": 5},
                    {"Region": "eu-west-1", "Score": 8},
                ]
            },
        )
        found = placement_scores(
            FakeSession(client),  # type: ignore[arg-type]
            ["c5.xlarge"],
            ["us-east-1", "eu-west-1"],
            1,
            by_zone=False,
        )
    rows = rank(HISTORY, found, ["c5.xlarge"], ["us-east-1", "eu-west-1"], by_zone=False)
    assert [(r["region"], r["availability_zone"]) for r in rows] == [
        ("eu-west-1", None),
        ("us-east-1", None),
    ]
    assert rows[1]["instance_hours"] == 300.0
    assert rows[1]["interruptions_per_100h"] == 3.0


def test_a_refusal_from_aws_is_said_and_the_fleets_history_still_ranks() -> None:
    client = ec2()
    with Stubber(client) as scores:
        scores.add_client_error(
            "get_spot_placement_scores", "UnauthorizedOperation", "not authorized"
        )
        found = placement_scores(
            FakeSession(client),  # type: ignore[arg-type]
            ["c5.xlarge"],
            ["us-east-1"],
            1,
            by_zone=True,
        )
    assert found.source == "unavailable"
    assert "UnauthorizedOperation" in (found.note or "")
    rows = rank(HISTORY, found, ["c5.xlarge"], ["us-east-1"], by_zone=True)
    assert [r["availability_zone"] for r in rows] == ["us-east-1a", "us-east-1b"]


def test_a_local_endpoint_that_cannot_answer_gets_the_labelled_sample() -> None:
    scores_client, zones_client = ec2("http://127.0.0.1:5000"), ec2("http://127.0.0.1:5000")
    with Stubber(scores_client) as scores, Stubber(zones_client) as zones:
        scores.add_client_error("get_spot_placement_scores", "InternalError", http_status_code=500)
        zones.add_response("describe_availability_zones", ZONES)
        found = placement_scores(
            FakeSession(scores_client, zones_client),  # type: ignore[arg-type]
            ["c5.xlarge"],
            ["us-east-1"],
            1,
            by_zone=True,
        )
    assert found.source == "sample"
    assert "SAMPLE scores, not EC2's" in (found.note or "")
    assert found.by_place[("us-east-1", "us-east-1b")] == 9  # use1-az1 in the sample
