"""What Lambda gives a handler, rebuilt for the local stack: a context and event shapes."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda event for a batch of messages received from an SQS queue."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The Lambda event for one SNS notification, from the envelope SNS sends to SQS."""
    attributes = {
        name: {"Type": attr.get("Type", "String"), "Value": attr.get("Value")}
        for name, attr in (envelope.get("MessageAttributes") or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId", str(uuid.uuid4())),
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope.get("Timestamp", _now()),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL", ""),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    """The event EventBridge Scheduler-style rules deliver on each tick."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": _now(),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


def stream_event(
    records: list[dict[str, Any]], stream_arn: str, shard_id: str, window_seconds: int = 0
) -> dict[str, Any]:
    """The Lambda event for a batch of DynamoDB stream records from one shard. With a
    tumbling window (`window_seconds` > 0), Lambda adds the window, its state and the
    shard's id."""
    event: dict[str, Any] = {
        "Records": [
            {**record, "eventSourceARN": stream_arn, "awsRegion": REGION} for record in records
        ]
    }
    if window_seconds > 0:
        now = time.time()
        start = now - now % window_seconds
        event.update(
            window={"start": _iso(start), "end": _iso(start + window_seconds)},
            state={},
            shardId=shard_id,
            eventSourceARN=stream_arn,
            isFinalInvokeForWindow=False,
            isWindowTerminatedEarly=False,
        )
    return event


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(value: Any) -> str:
    return json.dumps(value, default=str)
