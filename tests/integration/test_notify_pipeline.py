"""The rollup and the delivery on moto, posting to the local webhook receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from chalicelib.alerts.publish import Alert, publish_request
from chalicelib.core.clients import Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.notify.deliver import Delivery
from chalicelib.notify.destinations import DestinationBook
from chalicelib.notify.rollup import Dispatcher, QueueMessage, Rollup, bucket_key
from local.provision import provision
from local.webhook_receiver import WebhookReceiver

T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)


class Reports:
    def report_notice(self, signal: Any) -> Any:
        raise AssertionError("no report expected")


def envelope(alert: Alert) -> str:
    request = publish_request(alert, "arn:aws:sns:us-east-1:123456789012:spawn-alerts")
    return json.dumps(
        {"Type": "Notification", "TopicArn": request["TopicArn"], "Message": request["Message"]}
    )


def warning(n: int) -> Alert:
    return Alert(
        "spot_interruption",
        "warning",
        f"Spot interruption: i-{n:08x}",
        {
            "instance_id": f"i-{n:08x}",
            "instance_type": "c5.xlarge",
            "availability_zone": "us-east-1a" if n % 3 else "us-east-1b",
        },
        "arr-1",
        T0,
    )


@pytest.fixture
def receiver() -> Any:
    hooks = WebhookReceiver()
    hooks.start()
    yield hooks
    hooks.stop()


def test_a_burst_becomes_one_message_with_exact_counts_posted_once(
    session: boto3.Session, receiver: WebhookReceiver
) -> None:
    provision(session)
    sqs = session.client("sqs")
    for name in ("spawn-notify", "spawn-notify-deliver", "spawn-notify-failed"):
        sqs.create_queue(QueueName=name)
    session.client("secretsmanager").create_secret(
        Name="spawn-fleet-monitor/notify",
        SecretString=json.dumps(
            {
                "destinations": [
                    {"name": "ops", "kind": "slack", "url": receiver.url("slack", "ops")},
                    {
                        "name": "bob",
                        "kind": "slack",
                        "url": receiver.url("slack", "bob"),
                        "owner": "bob",
                    },
                ]
            }
        ),
    )
    clients = Clients(session)
    now = [T0.timestamp()]
    book = DestinationBook(clients.secret, "spawn-fleet-monitor/notify", clock=lambda: now[0])
    rollup = Rollup(
        clients.dynamodb,
        "spawn-fleet-stats",
        clients.sqs,
        "spawn-notify",
        Dispatcher(book, clients.sqs, "spawn-notify-deliver"),
        Reports(),
        lambda array_id: ("render", 1000),
        lambda instance_id: None,
        window_seconds=60,
        critical_topic="spawn-critical",
        clock=lambda: now[0],
    )
    messages = [QueueMessage(f"m-{n}", envelope(warning(n))) for n in range(150)]
    assert rollup.take_batch(messages[:100]) == []
    # A retried batch (and SNS duplicates) count nothing twice.
    assert rollup.take_batch(messages[50:]) == []
    url = sqs.get_queue_url(QueueName="spawn-notify")["QueueUrl"]
    # One timer, delayed to the window's end (moto holds it that long in real time).
    waiting = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert waiting["ApproximateNumberOfMessagesDelayed"] == "1"
    timer = json.dumps({"notify_flush": bucket_key("arr-1#spot_interruption", int(now[0] // 60))})
    now[0] += 61
    rollup.take_batch([QueueMessage("t", timer)])
    rollup.take_batch([QueueMessage("t2", timer)])  # the timer again: nothing more
    deliver_url = sqs.get_queue_url(QueueName="spawn-notify-deliver")["QueueUrl"]
    jobs = sqs.receive_message(QueueUrl=deliver_url, MaxNumberOfMessages=10)["Messages"]
    assert len(jobs) == 1  # bob's channel never gets alice's array
    delivery = Delivery(
        clients.dynamodb,
        "spawn-fleet-stats",
        clients.sqs,
        "spawn-notify-deliver",
        "spawn-notify-failed",
        book,
        None,
        max_attempts=3,
        timeout=2,
        pacer_for=lambda d: RateLimiter(1000, burst=1000),
        clock=lambda: now[0],
    )
    batch = [QueueMessage(j["MessageId"], j["Body"]) for j in jobs]
    assert delivery.deliver_batch(batch) == []
    assert delivery.deliver_batch(batch) == []  # an SQS duplicate posts nothing
    posted = receiver.delivered("slack", "ops")
    assert len(posted) == 1
    text = json.dumps(posted[0].body)
    assert "150 spot interruption warnings" in text
    assert "100 in us-east-1a" in text
    assert receiver.delivered("slack", "bob") == []
