"""`doctor`'s trail check: failed launches reach EventBridge only through CloudTrail.

A failed `RunInstances` leaves no EC2 event; EventBridge delivers CloudTrail's record of
the call (`AWS API Call via CloudTrail`) only when a trail with logging on records the
region's management write events (basic or advanced event selectors). Without one,
launch failures (SPEC §15) cannot be seen: the check says so, and how to create one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

NAME = "trail"
EC2 = "ec2.amazonaws.com"
FIX = (
    "create one: aws cloudtrail create-trail --name spawn-management --s3-bucket-name "
    "BUCKET --is-multi-region-trail && aws cloudtrail start-logging --name "
    "spawn-management (the first copy of management events is free; its S3 storage is "
    "not); see docs/launch-failures.md"
)


def _basic_logs_writes(selectors: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        s.get("IncludeManagementEvents", True) and s.get("ReadWriteType", "All") != "ReadOnly"
        for s in selectors
    )


def _advanced_logs_writes(selectors: Sequence[Mapping[str, Any]]) -> bool:
    for selector in selectors:
        fields = {f.get("Field"): f for f in selector.get("FieldSelectors", [])}
        category = fields.get("eventCategory", {})
        if "Management" not in category.get("Equals", []):
            continue
        if fields.get("readOnly", {}).get("Equals") == ["true"]:
            continue
        source = fields.get("eventSource", {})
        if source.get("Equals") and EC2 not in source["Equals"]:
            continue
        if EC2 in source.get("NotEquals", []):
            continue
        return True
    return False


def logs_launch_calls(selectors: Mapping[str, Any]) -> bool:
    """Whether a trail's `GetEventSelectors` answer records EC2's management writes."""
    if selectors.get("AdvancedEventSelectors"):
        return _advanced_logs_writes(selectors["AdvancedEventSelectors"])
    if not selectors.get("EventSelectors"):
        # A trail without custom selectors records every management event (AWS's
        # default; moto answers it with empty lists).
        return True
    return _basic_logs_writes(selectors["EventSelectors"])


def trail_check(cloudtrail: Any, region: str) -> tuple[str, str, str]:
    """(status, detail, fix) of the trail check for `region`."""
    try:
        trails = cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", [])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return (
            "warn",
            f"cannot read trails ({code}): whether launch failures are seen is unknown",
            "allow cloudtrail:DescribeTrails, GetTrailStatus and GetEventSelectors",
        )
    for trail in trails:
        if not (trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == region):
            continue
        arn = trail.get("TrailARN") or trail.get("Name")
        try:
            if not cloudtrail.get_trail_status(Name=arn).get("IsLogging"):
                continue
            if not logs_launch_calls(cloudtrail.get_event_selectors(TrailName=arn)):
                continue
        except ClientError:
            continue
        return (
            "ok",
            f"trail {trail.get('Name')} logs management events in {region}: failed "
            "launches reach the monitor",
            "",
        )
    return (
        "warn",
        f"no trail logs management write events in {region}: launch failures "
        "(capacity, spot limits, quotas) cannot be seen, and members stay pending unexplained",
        FIX,
    )
