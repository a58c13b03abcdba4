"""The events of a history in AWS's exact shapes, each derived from its sample in
`events/` (the same files the tests load), and their malformed variants.

Malformed variants are what a broken producer or a schema change would deliver: a body
that is not JSON, a detail without its instance id, a time that is not ISO-8601, a
stream record without keys. Each must be rejected with one logged error.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"
ACCOUNT = "123456789012"
REGION = "us-east-1"
SAMPLES = {
    "state": "ec2-state-change-running.json",
    "warning": "ec2-spot-interruption-warning.json",
    "rebalance": "ec2-rebalance-recommendation.json",
    "alarm": "sns-alarm-notification-alarm.json",
}


@cache
def _sample(kind: str) -> dict[str, Any]:
    return json.loads((EVENTS / SAMPLES[kind]).read_text())  # type: ignore[no-any-return]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ec2_event(
    kind: str, instance_id: str, at: datetime, event_id: str, **detail: str
) -> dict[str, Any]:
    """An EventBridge event from EC2: `state` (detail: state), `warning` (detail:
    instance-action) or `rebalance`."""
    event = copy.deepcopy(_sample(kind))
    event["id"] = event_id
    event["time"] = stamp(at)
    event["resources"] = [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"]
    event["detail"] = {"instance-id": instance_id, **detail}
    return event


def alarm_message(
    instance_id: str, check: str, state: str, old: str, at: datetime, topic_arn: str
) -> str:
    """The body CloudWatch publishes to SNS when a per-instance alarm changes state."""
    envelope = _sample("alarm")["Records"][0]["Sns"]
    body = json.loads(envelope["Message"])
    name = f"spawn-instance-{instance_id}-{check}"
    body.update(
        AlarmName=name,
        NewStateValue=state,
        OldStateValue=old,
        StateChangeTime=at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000",
        AlarmArn=f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        AlarmActions=[topic_arn],
        OKActions=[topic_arn],
    )
    body["Trigger"]["Dimensions"] = [{"value": instance_id, "name": "InstanceId"}]
    return json.dumps(body)


def malformed_ec2(event: dict[str, Any], rng: random.Random) -> str:
    """A broken copy of an EC2 event as an SQS message body (possibly not JSON)."""
    if rng.random() < 0.25:
        return json.dumps(event)[: rng.randint(5, 60)]
    return json.dumps(malformed_ec2_event(event, rng))


def malformed_ec2_event(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A broken copy of an EC2 event that is still JSON (EventBridge invokes a Lambda
    only with JSON)."""
    broken = copy.deepcopy(event)
    damage = rng.choice(("no-instance", "bad-time", "no-detail"))
    if damage == "no-instance":
        broken["detail"].pop("instance-id")
    elif damage == "bad-time":
        broken["time"] = "27/01/2026 10:00"
    else:
        broken.pop("detail")
    return broken


def malformed_notification(message: str, rng: random.Random) -> str:
    """A broken copy of an alarm notification body."""
    if rng.random() < 0.5:
        return message[: rng.randint(5, 60)]
    body = json.loads(message)
    body.pop("NewStateValue")
    return json.dumps(body)


def malformed_record(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A broken copy of a DynamoDB stream record (its own event id)."""
    broken = copy.deepcopy(record)
    broken["eventID"] = f"{record['eventID']}-malformed"
    if rng.random() < 0.5:
        broken["dynamodb"].pop("Keys")
    else:
        broken["dynamodb"].pop("OldImage", None)
        broken["dynamodb"].pop("NewImage", None)
    return broken
