"""Failed launches for the simulated fleet: what CloudTrail would record, as EventBridge
delivers it (SPEC §15), so `make run` shows pending workers with their causes.

spawn launches each array member with its own `RunInstances` (MinCount = MaxCount = 1,
the array tags in the tag specifications). Here some members of a spot array fail: a
zone out of capacity (`Server.InsufficientInstanceCapacity`) or the account's spot
limit (`Client.MaxSpotInstanceCountExceeded`). The events carry the shape of AWS's
CloudTrail record (`events/cloudtrail-runinstances-*.json`).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"
#: The share of a spot array's members whose launch fails, at most.
FAILING_SHARE = 0.25
CAUSES = (
    (
        "Server.InsufficientInstanceCapacity",
        "We currently do not have sufficient {type} capacity in the Availability Zone you "
        "requested ({zone}). Our system will be working on provisioning additional capacity.",
    ),
    ("Client.MaxSpotInstanceCountExceeded", "Max spot instance count exceeded"),
)


def failing_members(size: int, spot: bool, rng: random.Random) -> int:
    """How many of an array's members fail to launch (spot arrays only)."""
    if not spot or size < 4:
        return 0
    return rng.randint(1, max(1, int(size * FAILING_SHARE)))


def run_instances_failure(
    *,
    code: str,
    message: str,
    tags: Mapping[str, str],
    instance_type: str,
    zone: str,
    at: datetime,
    region: str,
    account: str,
    caller_arn: str,
    spot: bool = True,
) -> dict[str, Any]:
    """One failed `RunInstances` as a PutEvents entry (the CloudTrail record in detail)."""
    when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    request: dict[str, Any] = {
        "instancesSet": {"items": [{"imageId": "ami-12c6146b", "minCount": 1, "maxCount": 1}]},
        "instanceType": instance_type,
        "placement": {"availabilityZone": zone},
        "tagSpecificationSet": {
            "items": [
                {
                    "resourceType": kind,
                    "tags": [{"key": k, "value": v} for k, v in tags.items()],
                }
                for kind in ("instance", "volume")
            ]
        },
    }
    if spot:
        request["instanceMarketOptions"] = {
            "marketType": "spot",
            "spotOptions": {"spotInstanceType": "one-time"},
        }
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": caller_arn, "accountId": account},
        "eventTime": when,
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "spawn (simulated)",
        "errorCode": code,
        "errorMessage": message,
        "requestParameters": request,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    # Real EventBridge refuses an `aws.*` source from PutEvents; moto, the local
    # stand-in for CloudTrail here, accepts it.
    return {
        "Time": at,
        "Source": "aws.ec2",
        "DetailType": CLOUDTRAIL_CALL,
        "Detail": json.dumps(detail),
        "Resources": [],
    }


def failure_events(
    *,
    count: int,
    first_index: int,
    tags: Mapping[str, str],
    instance_type: str,
    zones: Sequence[str],
    at: datetime,
    region: str,
    account: str,
    caller_arn: str,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """`count` failed member launches (indexes from `first_index`): most for capacity in
    one zone, the rest for the spot limit."""
    zone = zones[0] if zones else f"{region}a"
    events = []
    for n in range(count):
        code, message = CAUSES[0] if rng.random() < 0.6 else CAUSES[1]
        member = {**tags, "spawn:job-array-index": str(first_index + n)}
        events.append(
            run_instances_failure(
                code=code,
                message=message.format(type=instance_type, zone=zone),
                tags=member,
                instance_type=instance_type,
                zone=zone,
                at=at,
                region=region,
                account=account,
                caller_arn=caller_arn,
            )
        )
    return events
