"""`doctor`'s trail check on moto's CloudTrail: launch failures need a trail logging the
region's management write events (SPEC §15)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from spawn_monitor.doctor_trail import logs_launch_calls, trail_check

REGION = "us-east-1"


def trail(session: boto3.Session, name: str = "org-trail", multi_region: bool = True) -> Any:
    s3 = session.client("s3")
    s3.create_bucket(Bucket=f"{name}-trail-logs")
    cloudtrail = session.client("cloudtrail")
    cloudtrail.create_trail(
        Name=name, S3BucketName=f"{name}-trail-logs", IsMultiRegionTrail=multi_region
    )
    return cloudtrail


def test_no_trail_says_launch_failures_cannot_be_seen_and_how_to_fix(
    session: boto3.Session,
) -> None:
    status, detail, fix = trail_check(session.client("cloudtrail"), REGION)
    assert status == "warn"
    assert "launch failures" in detail
    assert "cannot be seen" in detail
    assert "create-trail" in fix
    assert "start-logging" in fix
    assert "free" in fix
    assert "S3" in fix


def test_a_logging_trail_with_management_events_passes(session: boto3.Session) -> None:
    cloudtrail = trail(session)
    assert trail_check(cloudtrail, REGION)[0] == "warn"  # created, not logging yet
    cloudtrail.start_logging(Name="org-trail")
    status, detail, _ = trail_check(cloudtrail, REGION)
    assert status == "ok"
    assert "org-trail" in detail


def test_a_trail_of_reads_only_or_data_events_only_does_not_count(session: boto3.Session) -> None:
    cloudtrail = trail(session)
    cloudtrail.start_logging(Name="org-trail")
    cloudtrail.put_event_selectors(
        TrailName="org-trail",
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    )
    assert trail_check(cloudtrail, REGION)[0] == "warn"
    cloudtrail.put_event_selectors(
        TrailName="org-trail",
        AdvancedEventSelectors=[
            {
                "Name": "management writes",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "readOnly", "Equals": ["false"]},
                ],
            }
        ],
    )
    assert trail_check(cloudtrail, REGION)[0] == "ok"


def test_a_single_region_trail_elsewhere_does_not_count(session: boto3.Session) -> None:
    other = boto3.Session(region_name="eu-west-1")
    s3 = other.client("s3")
    s3.create_bucket(
        Bucket="eu-trail-logs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    cloudtrail = other.client("cloudtrail")
    cloudtrail.create_trail(Name="eu-trail", S3BucketName="eu-trail-logs", IsMultiRegionTrail=False)
    cloudtrail.start_logging(Name="eu-trail")
    assert trail_check(cloudtrail, "eu-west-1")[0] == "ok"
    assert trail_check(session.client("cloudtrail"), REGION)[0] == "warn"


@pytest.mark.parametrize(
    ("selectors", "logs"),
    [
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "WriteOnly"}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]}, False),
        (
            {
                "AdvancedEventSelectors": [
                    {
                        "FieldSelectors": [
                            {"Field": "eventCategory", "Equals": ["Management"]},
                            {"Field": "eventSource", "NotEquals": ["ec2.amazonaws.com"]},
                        ]
                    }
                ]
            },
            False,
        ),
        (
            {
                "AdvancedEventSelectors": [
                    {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}
                ]
            },
            False,
        ),
    ],
)
def test_which_selectors_record_run_instances(selectors: dict[str, Any], logs: bool) -> None:
    assert logs_launch_calls(selectors) is logs


def test_no_custom_selectors_is_aws_default_all_management_events() -> None:
    assert logs_launch_calls({"EventSelectors": [], "AdvancedEventSelectors": []})
