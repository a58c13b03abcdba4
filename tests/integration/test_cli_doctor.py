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


def test_series_are_counted_once_however_many_points_they_have(session: boto3.Session) -> None:
    cloudwatch = session.client("cloudwatch")
    for minute in range(5):  # moto lists a series once per data point
        cloudwatch.put_metric_data(
            Namespace="Spawn/Workers",
            MetricData=[
                {
                    "MetricName": "TasksCompleted",
                    "Value": 1.0,
                    "Timestamp": NOW - timedelta(minutes=minute),
                },
                {
                    "MetricName": "TasksCompleted",
                    "Dimensions": [{"Name": "ArrayId", "Value": "render-20260127-a1b2c3"}],
                    "Value": 1.0,
                    "Timestamp": NOW - timedelta(minutes=minute),
                },
            ],
        )
    assert doctor(session)._recent_series("Spawn/Workers") == 2


def test_in_fleet_query_mode_only_instances_the_query_leaves_out_need_their_alarms(
    session: boto3.Session,
) -> None:
    ec2, cloudwatch = session.client("ec2"), session.client("cloudwatch")

    def launch(tags: dict[str, str]) -> str:
        spec = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
        reservation = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec
        )
        return str(reservation["Instances"][0]["InstanceId"])

    launch({"spawn:managed": "true"})  # selected by the query: no alarms of its own
    guide = launch({"spawn": "true"})  # not selected: keeps both its alarms

    def alarm(name: str) -> None:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            MetricName="StatusCheckFailed_Instance",
            Namespace="AWS/EC2",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=2,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )

    for name in ("spawn-fleet-unhealthy", "spawn-fleet-status-check", "spawn-fleet-system-check"):
        alarm(name)
    later = Doctor(
        session, ApiError("not needed"), "x", local=False, clock=lambda: NOW + timedelta(hours=1)
    )
    later.check_alarms()
    [missing] = [c for c in later.checks if c.name == "instance alarms"]
    assert missing.status == "fail"
    assert f"spawn-instance-{guide}-status" in missing.detail
    for suffix in ("status", "system"):
        alarm(f"spawn-instance-{guide}-{suffix}")
    again = Doctor(
        session, ApiError("not needed"), "x", local=False, clock=lambda: NOW + timedelta(hours=1)
    )
    again.check_alarms()
    [agreed] = [c for c in again.checks if c.name == "instance alarms"]
    assert agreed.status == "ok", agreed.detail
    assert agreed.detail == (
        "2 running managed instances; fleet-query mode: the fleet alarms watch those tagged "
        "spawn:managed=true; 1 not so tagged should have their own two each; 2 instance "
        "alarms exist, as expected"
    )


def test_instances_launched_moments_ago_are_counted_as_still_waiting_not_as_agreeing(
    session: boto3.Session,
) -> None:
    session.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        MinCount=3,
        MaxCount=3,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "spawn:managed", "Value": "true"}]}
        ],
    )
    check = doctor(session)
    check.now = datetime.now(UTC)  # moto's launch time is now: all three within the grace

    check.check_alarms()

    [alarms] = [c for c in check.checks if c.name == "instance alarms"]
    assert alarms.status == "ok"
    assert alarms.detail == (
        "3 running managed instances, each with its own two alarms; 0 instance alarms "
        "exist; 6 still to come for 3 instances launched in the last 5 minutes"
    )


def test_alarms_of_an_instance_that_just_stopped_are_due_for_deletion_not_a_failure(
    session: boto3.Session,
) -> None:
    ec2, cloudwatch = session.client("ec2"), session.client("cloudwatch")
    [instance] = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "spawn:managed", "Value": "true"}]}
        ],
    )["Instances"]
    for suffix in ("status", "system"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"spawn-instance-{instance['InstanceId']}-{suffix}",
            MetricName="StatusCheckFailed_Instance",
            Namespace="AWS/EC2",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=2,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])

    def alarms_at(now: datetime) -> tuple[str, str]:
        check = Doctor(session, ApiError("not needed"), "x", local=False, clock=lambda: now)
        check.check_alarms()
        [found] = [c for c in check.checks if c.name == "instance alarms"]
        return found.status, found.detail

    status, detail = alarms_at(datetime.now(UTC))
    assert status == "ok", detail
    assert detail.endswith(
        "; 2 of instances that stopped running in the last 5 minutes, still to be deleted"
    )
    later, _ = alarms_at(datetime.now(UTC) + timedelta(minutes=10))
    assert later == "fail"  # no longer in transit: leaked


def test_the_cost_tag_check_reads_cost_explorer_and_says_how_to_activate(
    session: boto3.Session,
) -> None:
    from botocore.awsrequest import AWSResponse

    status = {"value": "Inactive"}

    # moto has no ListCostAllocationTags: answered before the call is sent.
    def answer(**_: object) -> tuple[AWSResponse, dict[str, object]]:
        tags = [{"TagKey": "spawn:job-array-id", "Status": status["value"]}]
        return AWSResponse("", 200, {}, None), {"CostAllocationTags": tags}

    session.events.register("before-call.ce.ListCostAllocationTags", answer)
    inactive = doctor(session)
    inactive.check_cost_tag()
    [check] = inactive.checks
    assert (check.name, check.status, inactive.tag_active) == ("cost tag", "warn", False)
    assert "update-cost-allocation-tags-status" in check.fix
    status["value"] = "Active"
    active = doctor(session)
    active.check_cost_tag()
    assert (active.checks[0].status, active.tag_active) == ("ok", True)
    local = Doctor(session, ApiError("not needed"), "s", local=True, clock=lambda: NOW)
    local.check_cost_tag()
    assert local.checks[0].status == "skip"
