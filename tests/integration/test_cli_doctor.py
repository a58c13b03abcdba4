"""`spawn-monitor doctor`'s deployed-stage reads on moto: names from the stack's
resources, and the every-minute functions' log groups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from spawn_monitor.api import ApiError
from spawn_monitor.doctor import Doctor

NOW = datetime.now(UTC)


def doctor(session: boto3.Session, stack: str = "spawn-fleet-monitor") -> Doctor:
    return Doctor(session, ApiError("not needed"), stack, local=False, clock=lambda: NOW)


def test_names_come_from_the_stack_when_there_is_one(session: boto3.Session) -> None:
    template = {
        "Resources": {
            "Progress": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "prod-progress",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                },
            },
            "Alerts": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "prod-alerts"}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "prod-events"}},
        }
    }
    session.client("cloudformation").create_stack(
        StackName="spawn-fleet-monitor-prod", TemplateBody=json.dumps(template)
    )
    names, _, source = doctor(session, "spawn-fleet-monitor-prod").resources()
    assert source == "from stack spawn-fleet-monitor-prod"
    assert names["AWS::DynamoDB::Table"] == ("prod-progress",)
    assert names["AWS::SNS::Topic"] == ("prod-alerts",)
    assert names["AWS::SQS::Queue"] == ("prod-events",)
    _, _, fallback = doctor(session, "no-such-stack").resources()
    assert fallback == "default names (no CloudFormation stack no-such-stack)"


def test_a_silent_every_minute_function_fails_and_a_logging_one_passes(
    session: boto3.Session,
) -> None:
    logs = session.client("logs")
    for function, last in (("fleet_tick", NOW - timedelta(minutes=1)), ("progress_tick", None)):
        group = f"/aws/lambda/spawn-fleet-monitor-prod-{function}"
        logs.create_log_group(logGroupName=group)
        if last is not None:
            logs.create_log_stream(logGroupName=group, logStreamName="s")
            logs.put_log_events(
                logGroupName=group,
                logStreamName="s",
                logEvents=[{"timestamp": int(last.timestamp() * 1000), "message": "tick"}],
            )
    checker = doctor(session)
    checker.check_logs(
        ["spawn-fleet-monitor-prod-fleet_tick", "spawn-fleet-monitor-prod-progress_tick"]
    )
    statuses = {c.name: c.status for c in checker.checks}
    assert statuses == {
        "logs spawn-fleet-monitor-prod-fleet_tick": "ok",
        "logs spawn-fleet-monitor-prod-progress_tick": "fail",
    }
    assert "aws logs tail" in checker.checks[-1].fix
