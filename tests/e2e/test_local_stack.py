"""Through the local stack (SPEC §9): events, messages and ticks reach the functions
through the same rules, queues and topics as in AWS; metrics land on the endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.e2e.conftest import ROOT, Stack, eventually

pytestmark = pytest.mark.e2e
TAGS = {"spawn:managed": "true", "spawn:job-array-id": "e2e-20261126-abcdef"}


def launch(stack: Stack, count: int = 1, tags: dict[str, str] | None = None) -> list[str]:
    spec = [
        {
            "ResourceType": "instance",
            "Tags": [{"Key": k, "Value": v} for k, v in (tags or TAGS).items()],
        }
    ]
    reservation = stack.client("ec2").run_instances(
        ImageId="ami-12c6146b", MinCount=count, MaxCount=count, TagSpecifications=spec
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def put_ec2_event(
    stack: Stack, sample: str, detail: dict[str, Any], at: datetime | None = None
) -> None:
    """Send an AWS-shaped EC2 event to the default bus, as EC2 itself would."""
    event = load_event(sample)
    response = stack.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(detail),
                "Resources": [
                    f"arn:aws:ec2:us-east-1:123456789012:instance/{detail['instance-id']}"
                ],
                "Time": at or datetime.now(UTC),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def alarms_of(stack: Stack, instance_id: str) -> list[str]:
    found = stack.client("cloudwatch").describe_alarms(
        AlarmNamePrefix=f"spawn-instance-{instance_id}-"
    )
    return sorted(a["AlarmName"] for a in found["MetricAlarms"])


def running(stack: Stack, instance_id: str, at: datetime | None = None) -> None:
    put_ec2_event(
        stack, "ec2-state-change-running.json", {"instance-id": instance_id, "state": "running"}, at
    )


def test_health_answers(stack: Stack) -> None:
    assert stack.get("/health") == (200, {"status": "ok"})


def test_an_ec2_event_on_the_default_bus_reaches_the_lifecycle_function(stack: Stack) -> None:
    [instance] = launch(stack)
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=5)
    put_ec2_event(
        stack,
        "ec2-state-change-terminated.json",
        {"instance-id": instance, "state": "terminated"},
        datetime.now(UTC) + timedelta(seconds=5),
    )
    eventually(lambda: alarms_of(stack, instance) == [], timeout=3)


def test_a_schedule_tick_runs_the_reconciler(stack: Stack) -> None:
    [instance] = launch(stack)  # no event at all: only the scheduled reconciler can see it
    # Left to the lifecycle for the 2 s grace period, then made by the next tick.
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=8)


def _alarm_message(instance_id: str, state: str, at: datetime) -> str:
    sample = (
        "sns-alarm-notification-alarm.json"
        if state == "ALARM"
        else "sns-alarm-notification-ok.json"
    )
    message = json.loads(load_event(sample)["Records"][0]["Sns"]["Message"])
    message.update(
        AlarmName=f"spawn-instance-{instance_id}-status",
        NewStateValue=state,
        StateChangeTime=at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
    )
    message["Trigger"]["Dimensions"] = [{"value": instance_id, "name": "InstanceId"}]
    return json.dumps(message)


def _topic(stack: Stack, name: str) -> str:
    return f"arn:aws:sns:us-east-1:123456789012:{name}"


def test_an_sns_message_reaches_the_notification_function(stack: Stack) -> None:
    [instance] = launch(stack)
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=3)
    stack.client("sns").publish(
        TopicArn=_topic(stack, "spawn-alerts"),
        Subject="ALARM",
        Message=_alarm_message(instance, "ALARM", datetime.now(UTC) + timedelta(seconds=1)),
    )

    def listed() -> bool:
        alerts = stack.get("/alerts?limit=50")[1]["alerts"]
        return any(a.get("instance_id") == instance and a["new_state"] == "ALARM" for a in alerts)

    eventually(listed, timeout=3)


def _collect(stack: Stack, queue_url: str, wait: float) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_a_spot_interruption_sent_is_in_the_alert_feed_within_one_tick(stack: Stack) -> None:
    array_id = "feed-20261204-0a0b0c"
    [instance] = launch(stack, tags={"spawn:managed": "true", "spawn:job-array-id": array_id})
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=3)
    sqs = stack.client("sqs")
    queue = sqs.create_queue(QueueName="e2e-feed-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.client("sns").subscribe(
        TopicArn=_topic(stack, "spawn-alerts"),
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "FilterPolicy": json.dumps(
                {"event_type": ["spot_interruption"], "array_id": [array_id]}
            )
        },
    )
    put_ec2_event(
        stack,
        "ec2-spot-interruption-warning.json",
        {"instance-id": instance, "instance-action": "terminate"},
    )
    # Sent: a subscriber has it. One tick later (no sleeping) the feed shows it.
    eventually(lambda: _collect(stack, queue, wait=1), timeout=5)
    stack.tick()
    status, body = stack.get(
        f"/alerts?kind=system&event_type=spot_interruption&array_id={array_id}"
    )
    assert status == 200, body
    [entry] = body["alerts"]
    assert (entry["kind"], entry["event_type"], entry["severity"]) == (
        "system",
        "spot_interruption",
        "warning",
    )
    assert (entry["array_id"], entry["instance_id"]) == (array_id, instance)
    # The filters narrow it away, and the unfiltered feed holds it too.
    assert stack.get(f"/alerts?kind=alarm&array_id={array_id}")[1]["alerts"] == []
    assert stack.get(f"/alerts?event_type=array_finished&array_id={array_id}")[1]["alerts"] == []
    everything = stack.get("/alerts?limit=100")[1]["alerts"]
    assert any(e["kind"] == "system" and e.get("instance_id") == instance for e in everything)
    assert stack.get("/alerts?kind=everything")[0] == 400


def test_spot_warning_counts_publishes_a_metric_and_alerts_subscribers_once(stack: Stack) -> None:
    array_id = "spot-20261126-0a0b0c"
    [instance] = launch(stack, tags={"spawn:managed": "true", "spawn:job-array-id": array_id})
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=3)

    sqs = stack.client("sqs")
    queue = sqs.create_queue(QueueName="e2e-spot-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.client("sns").subscribe(
        TopicArn=_topic(stack, "spawn-alerts"),
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"FilterPolicy": json.dumps({"event_type": ["spot_interruption"]})},
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    detail = {"instance-id": instance, "instance-action": "terminate"}
    for _ in range(3):  # EventBridge may deliver the same warning more than once
        put_ec2_event(stack, "ec2-spot-interruption-warning.json", detail)

    alerts = _collect(stack, queue, wait=4)
    assert len(alerts) == 1
    assert alerts[0]["MessageAttributes"]["array_id"]["Value"] == array_id

    cloudwatch = stack.client("cloudwatch")

    def count(dimensions: list[dict[str, str]]) -> float:
        result = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "c",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "Spawn/SpotInterruptions",
                            "MetricName": "Count",
                            "Dimensions": dimensions,
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=started,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
        )["MetricDataResults"][0]
        return sum(result["Values"])

    assert eventually(lambda: count([{"Name": "ArrayId", "Value": array_id}]), timeout=3) == 1
    # The fleet figure is its own, dimensionless series (moto would sum every series of the
    # name for a dimensionless query, so its existence is checked through ListMetrics).
    listed = cloudwatch.list_metrics(Namespace="Spawn/SpotInterruptions", MetricName="Count")[
        "Metrics"
    ]
    assert any(m.get("Dimensions", []) == [] for m in listed)
    fleet = eventually(lambda: stack.get("/fleet")[1]["interruptions"]["total"] >= 1, timeout=3)
    assert fleet


def test_fleet_health_from_alarm_notifications(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    others = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] == "running"
    ]
    if others:  # earlier tests' instances: gone, as far as this test is concerned
        ec2.terminate_instances(InstanceIds=others)
    # Wait for their ends first: with both in flight, "10 running" could be 9 new ones
    # and one old one, and the percentage below would be of 11.
    eventually(lambda: stack.get("/fleet")[1]["instances"]["running"] == 0, timeout=8)
    fleet = launch(stack, 10)
    at = datetime.now(UTC)
    for instance in fleet:
        running(stack, instance, at)
    eventually(lambda: stack.get("/fleet")[1]["instances"]["running"] == 10, timeout=8)

    sick = fleet[3]
    alarm_time = datetime.now(UTC) + timedelta(seconds=1)
    stack.client("sns").publish(
        TopicArn=_topic(stack, "spawn-alerts"), Message=_alarm_message(sick, "ALARM", alarm_time)
    )
    status = eventually(
        lambda: (s := stack.get("/fleet")[1])["unhealthy"]["count"] == 1 and s, timeout=4
    )
    assert status["unhealthy"] == {"count": 1, "percent": 10.0, "instance_ids": [sick]}
    # Alarms only: the fleet's own alerts (a system entry) may be newer on a shared stack.
    alerts = stack.get("/alerts?kind=alarm&limit=5")[1]["alerts"]
    assert alerts[0]["instance_id"] == sick
    assert alerts[0]["new_state"] == "ALARM"

    def unhealthy_percent() -> float:
        result = stack.client("cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "u",
                    "MetricStat": {
                        "Metric": {"Namespace": "Spawn/Fleet", "MetricName": "UnhealthyPercent"},
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=alarm_time,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
        )["MetricDataResults"][0]
        return max(result["Values"], default=0.0)

    assert eventually(unhealthy_percent, timeout=4) == 10.0
    [alarm] = stack.client("cloudwatch").describe_alarms(AlarmNames=["spawn-fleet-unhealthy"])[
        "MetricAlarms"
    ]
    assert alarm["Threshold"] == 5.0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [_topic(stack, "spawn-critical")]

    # Recovery: OK after the ALARM brings the instance back.
    stack.client("sns").publish(
        TopicArn=_topic(stack, "spawn-alerts"),
        Message=_alarm_message(sick, "OK", alarm_time + timedelta(seconds=30)),
    )
    eventually(lambda: stack.get("/fleet")[1]["unhealthy"]["count"] == 0, timeout=4)


def test_progress_rows_flow_through_the_stream_to_the_api(stack: Stack) -> None:
    array_id = "render-20261126-c0ffee"
    dynamodb = stack.client("dynamodb")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for index, status in enumerate(["running", "running", "completed", "failed"]):
        dynamodb.put_item(
            TableName="spawn-progress",
            Item={
                "array_id": {"S": array_id},
                "task_index": {"N": str(index)},
                "status": {"S": status},
                "tasks_completed": {"N": str(10 * index)},
                "last_update": {"S": now},
                "instance_id": {"S": f"i-{index:017x}"},
                "hostname": {"S": f"ip-10-0-0-{index}"},
            },
        )
    dynamodb.put_item(  # a row that breaks SPEC §4's shape
        TableName="spawn-progress",
        Item={"array_id": {"S": array_id}, "task_index": {"N": "4"}, "status": {"S": "exploded"}},
    )

    def progress() -> dict[str, Any] | None:
        code, body = stack.get(f"/arrays/{array_id}/progress")
        return body if code == 200 and body["workers"]["invalid"] == 1 else None

    body = eventually(progress, timeout=5)
    assert body["workers"] == {
        "total": 5,
        "pending": 0,
        "running": 2,
        "completed": 1,
        "failed": 1,
        "lost": 0,
        "stalled": 0,
        "invalid": 1,
    }
    assert body["tasks_completed"] == 60
    assert body["percent_complete"] == 40.0

    first = stack.get(f"/arrays/{array_id}/workers?limit=2")[1]
    assert [w["task_index"] for w in first["workers"]] == [0, 1]
    second = stack.get(f"/arrays/{array_id}/workers?limit=2&cursor={first['next']}")[1]
    assert [w["task_index"] for w in second["workers"]] == [2, 3]
    assert stack.get("/arrays/bad%20id/progress")[0] == 400
    assert stack.get("/arrays/never-seen-1/progress")[0] == 404
    assert stack.get(f"/arrays/{array_id}/workers?limit=0")[0] == 400


def test_malformed_events_are_logged_and_change_nothing(stack: Stack) -> None:
    put_ec2_event(stack, "ec2-spot-interruption-warning.json", {"instance-id": "not-an-instance"})
    eventually(lambda: "malformed spot interruption warning" in stack.log(), timeout=3)
    assert stack.process.poll() is None


def test_a_busy_port_gives_a_clear_error(stack: Stack) -> None:
    port = stack.api_endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env={"SFM_API_PORT": port, "SFM_AWS_PORT": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert "SFM_API_PORT" in result.stderr


def test_a_worker_whose_instance_terminates_counts_as_lost(stack: Stack) -> None:
    # Through the real stream: the lifecycle marks the row, the mark reaches the summary.
    array_id = "render-20261126-1o5t00"
    tags = {**TAGS, "spawn:job-array-id": array_id, "spawn:job-array-index": "0"}
    [instance] = launch(stack, tags=tags)
    running(stack, instance)
    eventually(lambda: len(alarms_of(stack, instance)) == 2, timeout=5)
    stack.client("dynamodb").put_item(
        TableName="spawn-progress",
        Item={
            "array_id": {"S": array_id},
            "task_index": {"N": "0"},
            "status": {"S": "running"},
            "tasks_completed": {"N": "3"},
            "last_update": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "instance_id": {"S": instance},
            "hostname": {"S": "ip-10-0-0-1"},
        },
    )
    stack.client("ec2").terminate_instances(InstanceIds=[instance])
    put_ec2_event(
        stack,
        "ec2-state-change-terminated.json",
        {"instance-id": instance, "state": "terminated"},
        datetime.now(UTC) + timedelta(seconds=5),
    )

    def lost() -> dict[str, Any] | None:
        code, body = stack.get(f"/arrays/{array_id}/progress")
        return body if code == 200 and body["workers"]["lost"] == 1 else None

    body = eventually(lost, timeout=10)
    assert (body["workers"]["running"], body["percent_complete"]) == (0, 100.0)
    assert body["lost_workers"] == {"spot_interruption": 0, "instance_ended": 1}
    [row] = stack.get(f"/arrays/{array_id}/workers?status=lost")[1]["workers"]
    assert (row["instance_id"], row["lost_cause"]) == (instance, "instance_ended")


def test_an_array_is_registered_under_its_launcher_and_everyone_sees_it_locally(
    stack: Stack,
) -> None:
    launcher = "arn:aws:sts::123456789012:assumed-role/Dev/e2e@example.com"
    array_id = "owned-20261126-0a0b0c"
    tags = {
        **TAGS,
        "spawn:job-array-id": array_id,
        "spawn:job-array-name": "owned",
        "spawn:job-array-size": "1",
        "spawn:iam-user": launcher,
    }
    [instance] = launch(stack, tags=tags)
    running(stack, instance)

    def registered() -> list[str]:
        found = stack.client("dynamodb").query(
            TableName="spawn-fleet-stats",
            IndexName="owner-arrays",
            KeyConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            # The owner is stored normalised: the role name folded, the session kept.
            ExpressionAttributeValues={
                ":owner": {"S": "arn:aws:sts::123456789012:assumed-role/dev/e2e@example.com"}
            },
        )
        return [item["array_id"]["S"] for item in found["Items"]]

    assert eventually(registered, timeout=5) == [array_id]
    # The local API has no IAM identity and isolation off: a request without one sees it.
    status, body = stack.get(f"/arrays/{array_id}/progress")
    assert status == 200
    assert (body["name"], body["workers"]["pending"]) == ("owned", 1)
