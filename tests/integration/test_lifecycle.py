"""EC2 state changes → registry and per-instance alarms, on moto (SPEC §2, §3, §5)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.alarms.per_instance import alarm_names
from chalicelib.core.clients import Clients
from chalicelib.fleet.lifecycle import Lifecycle, Message
from testkit.faults import count_calls, throttle
from tests.conftest import RetryWaits
from tests.integration.conftest import Fleet, container, fast_store, later


def _another_copy(fleet: Fleet) -> Lifecycle:
    """A second lifecycle handler with clients of its own, as a concurrent Lambda copy."""
    return container(Clients(fleet.session), fleet.settings).lifecycle


def test_running_managed_instance_gets_both_alarms_as_the_spec_says(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    outcome = fleet.lifecycle.handle([fleet.event(instance, "running")])

    assert outcome.failed == []
    alarms = fleet.cloudwatch.describe_alarms(AlarmNames=alarm_names(instance))["MetricAlarms"]
    by_metric = {a["MetricName"]: a for a in alarms}
    assert set(by_metric) == {"StatusCheckFailed_Instance", "StatusCheckFailed_System"}
    status = by_metric["StatusCheckFailed_Instance"]
    assert status["AlarmName"] == f"spawn-instance-{instance}-status"
    assert by_metric["StatusCheckFailed_System"]["AlarmName"] == f"spawn-instance-{instance}-system"
    for alarm in alarms:
        assert alarm["Namespace"] == "AWS/EC2"
        assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": instance}]
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Period"] == 60
        assert alarm["EvaluationPeriods"] == 2
        assert alarm["Threshold"] == 1.0
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [fleet.topic_arn]
        assert alarm["OKActions"] == [fleet.topic_arn]
        tags = fleet.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {"Key": "spawn:instance-id", "Value": instance} in tags
        assert {"Key": "spawn:job-array-id", "Value": "render-20260127-a1b2c3"} in tags

    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "running"
    assert row["managed"] is True
    assert row["array_id"] == "render-20260127-a1b2c3"
    assert row["lifecycle"] == "on-demand"
    assert row["availability_zone"].startswith("us-east-1")


def test_terminated_deletes_alarms_and_marks_the_instance_gone(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.terminate_instances(InstanceIds=[instance])
    fleet.lifecycle.handle([fleet.event(instance, "terminated", later(60))])

    assert fleet.alarm_names() == set()
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["gone"] is True
    assert row["state"] == "terminated"
    assert "expires_at" in row


def test_stopped_instance_loses_its_alarms_and_gets_them_back_when_it_runs(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.lifecycle.handle([fleet.event(instance, "stopping", later(10))])
    assert fleet.alarmed_instances() == {instance}  # other states are only recorded
    fleet.lifecycle.handle([fleet.event(instance, "stopped", later(20))])
    assert fleet.alarm_names() == set()
    fleet.lifecycle.handle([fleet.event(instance, "running", later(30))])
    assert fleet.alarmed_instances() == {instance}


def test_duplicates_change_nothing(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    running = fleet.event(instance, "running")
    calls = count_calls(fleet.cloudwatch)

    outcome = fleet.lifecycle.handle([running, running, Message("other-id", running.body)])
    assert outcome.failed == []
    assert calls.get("PutMetricAlarm") == 2  # one delivery's worth, not three
    fleet.lifecycle.handle([fleet.event(instance, "terminated", later(60))])
    fleet.lifecycle.handle([running])  # a duplicate delivered after the end

    assert fleet.alarm_names() == set()
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "terminated"


@pytest.mark.parametrize("same_batch", [True, False])
def test_running_delivered_after_terminated_creates_nothing(fleet: Fleet, same_batch: bool) -> None:
    [instance] = fleet.launch()
    terminated = fleet.event(instance, "terminated", later(60))
    running = fleet.event(instance, "running", later(0))
    if same_batch:
        fleet.lifecycle.handle([terminated, running])
    else:
        fleet.lifecycle.handle([terminated])
        fleet.lifecycle.handle([running])
    assert fleet.alarm_names() == set()
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "terminated"


def test_pending_and_running_in_the_same_second_end_running(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running"), fleet.event(instance, "pending")])
    fleet.lifecycle.handle([fleet.event(instance, "pending")])
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "running"
    assert fleet.alarmed_instances() == {instance}


@pytest.mark.parametrize(
    "tags",
    [
        {},
        {"spawn:managed": "false"},
        {"spawn": "true", "spawn:monitoring": "off"},
        {"spawn:managed": "true", "spawn:monitoring": "OFF"},
        {"Name": "someone-elses-box"},
    ],
)
def test_unmanaged_and_opted_out_instances_are_left_alone(
    fleet: Fleet, tags: dict[str, str]
) -> None:
    [instance] = fleet.launch(tags=tags)
    outcome = fleet.lifecycle.handle([fleet.event(instance, "running")])
    assert outcome.failed == []
    assert fleet.alarm_names() == set()


def test_the_guides_spawn_true_tag_counts_as_managed(fleet: Fleet) -> None:
    [instance] = fleet.launch(tags={"spawn": "true"})
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    assert fleet.alarmed_instances() == {instance}


def test_opting_out_while_stopped_removes_alarms_on_next_run(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.create_tags(Resources=[instance], Tags=[{"Key": "spawn:monitoring", "Value": "off"}])
    fleet.lifecycle.handle([fleet.event(instance, "running", later(30))])
    assert fleet.alarm_names() == set()


def test_instance_gone_from_ec2_is_handled_without_error(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.ec2.terminate_instances(InstanceIds=[instance])
    outcome = fleet.lifecycle.handle(
        [fleet.event(instance, "running"), fleet.event("i-0123456789abcdef0", "running")]
    )
    assert outcome.failed == []
    assert fleet.alarm_names() == set()


def test_malformed_messages_are_dropped_and_good_ones_still_applied(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    garbage = [
        Message("m1", "not json"),
        Message("m2", "[]"),
        Message(
            "m3", '{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}'
        ),
    ]
    outcome = fleet.lifecycle.handle([*garbage, fleet.event(instance, "running")])
    assert outcome.malformed == 3
    assert outcome.failed == []  # retrying garbage would never succeed
    assert fleet.alarmed_instances() == {instance}


def test_tag_reads_are_batched_for_a_burst(fleet: Fleet) -> None:
    instances = fleet.launch(150)
    calls = count_calls(fleet.ec2)
    fleet.lifecycle.handle([fleet.event(i, "running") for i in instances])
    # Tags, and the volumes that price the runs (chalicelib.cost.runs), once each.
    assert calls == {"DescribeInstances": 1, "DescribeVolumes": 1}
    assert fleet.alarmed_instances() == set(instances)


def test_deletes_are_batched_in_chunks_of_at_most_100_names(fleet: Fleet) -> None:
    instances = fleet.launch(120)
    fleet.lifecycle.handle([fleet.event(i, "running") for i in instances])
    sizes: list[int] = []
    fleet.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.DeleteAlarms",
        lambda params, **_: sizes.append(len(params["AlarmNames"])),
    )
    fleet.lifecycle.handle([fleet.event(i, "terminated", later(60)) for i in instances])
    assert sizes == [100, 100, 40]
    assert fleet.alarm_names() == set()


def test_throttled_alarm_puts_are_retried_until_every_alarm_exists(
    fleet: Fleet, no_retry_sleep: RetryWaits
) -> None:
    instances = fleet.launch(3)
    budget = iter([True, True, False, True] + [False] * 100)
    attempts = throttle(fleet.cloudwatch, "PutMetricAlarm", lambda: next(budget))
    outcome = fleet.lifecycle.handle([fleet.event(i, "running") for i in instances])
    assert outcome.failed == []
    assert attempts.count(0) == 3  # three throttles were answered ...
    assert fleet.alarmed_instances() == set(instances)  # ... and nothing was lost
    # Each retry was backed off first, in the tests' virtual time.
    assert len([w for w in no_retry_sleep.waits if w > 0]) >= 3
    assert len(fleet.alarm_names()) == 6


def test_throttling_past_the_retry_budget_reports_the_messages_for_redelivery(
    fleet: Fleet,
) -> None:
    from botocore.config import Config

    [instance] = fleet.launch()
    impatient = Clients(fleet.session, Config(retries={"mode": "standard", "max_attempts": 1}))
    fleet.lifecycle.alarms = fast_store(impatient, fleet.topic_arn)
    throttle(impatient.cloudwatch, "PutMetricAlarm", lambda: True)
    message = fleet.event(instance, "running")
    outcome = fleet.lifecycle.handle([message])
    assert outcome.failed == [message.message_id]
    assert outcome.batch_item_failures() == {
        "batchItemFailures": [{"itemIdentifier": message.message_id}]
    }
    # SQS delivers the message again; once CloudWatch answers, the alarms are made.
    fleet.lifecycle.alarms = fleet.alarms
    assert fleet.lifecycle.handle([message]).failed == []
    assert fleet.alarmed_instances() == {instance}


def test_recover_action_is_added_to_the_system_alarm_only(fleet: Fleet) -> None:
    from tests.integration.conftest import fast_store

    [instance] = fleet.launch()
    fleet.lifecycle.alarms = fast_store(fleet.clients, fleet.topic_arn, recover=True)
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    alarms = fleet.cloudwatch.describe_alarms(AlarmNames=alarm_names(instance))["MetricAlarms"]
    actions = {a["AlarmName"].rsplit("-", 1)[1]: a["AlarmActions"] for a in alarms}
    assert actions["status"] == [fleet.topic_arn]
    assert actions["system"] == [fleet.topic_arn, "arn:aws:automate:us-east-1:ec2:recover"]


def test_a_terminate_handled_while_alarms_are_paced_leaves_no_alarms(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two invocations at once: this one is pacing its puts when the other one records
    # the instance's termination (and, finding no alarms yet, deletes nothing).
    [instance] = fleet.launch()
    real_put = fleet.alarms.put
    other = fleet.event(instance, "terminated", later(60))

    def put_after_the_other_invocation(watched: object) -> None:
        monkeypatch.setattr(fleet.alarms, "put", real_put)
        fleet.lifecycle.handle([other])
        real_put(watched)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet.alarms, "put", put_after_the_other_invocation)
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    assert fleet.alarm_names() == set()


def test_array_name_and_size_come_from_spawn_tags(fleet: Fleet) -> None:
    from chalicelib.fleet.stats import Stats

    stats = Stats(fleet.clients.dynamodb, fleet.settings.stats_table)
    fleet.lifecycle.arrays = stats
    tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": "render-20260127-a1b2c3",
        "spawn:job-array-name": "render",
        "spawn:job-array-size": "40",
    }
    instances = fleet.launch(2, tags=tags)
    fleet.lifecycle.handle([fleet.event(i, "running") for i in instances])
    assert stats.array_info("render-20260127-a1b2c3") == ("render", 40)
    assert stats.array_info("never-seen") is None


def test_an_instance_opted_back_in_across_a_stop_start_no_longer_expires(fleet: Fleet) -> None:
    # J: the opt-out's TTL mark must go when the instance runs managed again, or DynamoDB
    # deletes the row (health, interruptions) of a running, watched instance.
    [instance] = fleet.launch()
    opt_out = [{"Key": "spawn:monitoring", "Value": "off"}]
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.create_tags(Resources=[instance], Tags=opt_out)
    fleet.lifecycle.handle([fleet.event(instance, "stopped", later(10))])
    fleet.lifecycle.handle([fleet.event(instance, "running", later(20))])
    opted_out = fleet.registry.get(instance)
    assert opted_out is not None
    assert "expires_at" in opted_out
    fleet.lifecycle.handle([fleet.event(instance, "stopped", later(30))])
    fleet.ec2.delete_tags(Resources=[instance], Tags=opt_out)
    fleet.lifecycle.handle([fleet.event(instance, "running", later(40))])
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["managed"] is True
    assert "expires_at" not in row
    assert fleet.alarmed_instances() == {instance}


def test_a_restart_handled_by_another_copy_during_paced_puts_keeps_the_new_runs_alarms(
    fleet: Fleet,
) -> None:
    # B: two copies of the handler at once. While this one paces its puts for the first
    # run, the other records the stop and the restart and creates the new run's alarms.
    [instance] = fleet.launch()
    other = _another_copy(fleet)
    puts: list[int] = []

    def restart_meanwhile(**_: object) -> None:
        puts.append(1)
        if len(puts) == len(alarm_names(instance)):  # this copy's last put is done
            assert other.handle([fleet.event(instance, "stopped", later(60))]).failed == []
            assert other.handle([fleet.event(instance, "running", later(120))]).failed == []

    fleet.cloudwatch.meta.events.register("after-call.cloudwatch.PutMetricAlarm", restart_meanwhile)
    assert fleet.lifecycle.handle([fleet.event(instance, "running")]).failed == []
    row = fleet.registry.get(instance)
    assert row is not None
    assert (row["state"], row["last_event_ms"]) == ("running", int(later(120).timestamp() * 1000))
    assert fleet.alarmed_instances() == {instance}  # the running instance stays watched


def test_a_restart_handled_by_another_copy_before_this_ones_delete_gets_its_alarms_back(
    fleet: Fleet,
) -> None:
    # B, the delete side (found by the property test): this copy recorded the stop; before
    # its delete lands, the other copy records the restart and makes the new alarms.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    other = _another_copy(fleet)
    deletes: list[int] = []

    def restart_before_the_delete(**_: object) -> None:
        deletes.append(1)
        if len(deletes) == 1:
            assert other.handle([fleet.event(instance, "running", later(120))]).failed == []

    fleet.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.DeleteAlarms", restart_before_the_delete
    )
    assert fleet.lifecycle.handle([fleet.event(instance, "stopped", later(60))]).failed == []
    assert fleet.alarmed_instances() == {instance}


def _fleet_view(fleet: Fleet) -> dict[str, Any]:
    from chalicelib.fleet.health import EMPTY_TOTALS, snapshot

    return snapshot(fleet.registry.all(), EMPTY_TOTALS, later(60))


def test_pending_managed_instances_are_recorded_with_their_tags_in_one_call(
    fleet: Fleet,
) -> None:
    launching = fleet.launch(3)
    [unmanaged] = fleet.launch(tags={"Name": "not ours"})
    calls = count_calls(fleet.ec2)
    outcome = fleet.lifecycle.handle([fleet.event(i, "pending") for i in [*launching, unmanaged]])
    assert outcome.failed == []
    assert calls == {"DescribeInstances": 1}  # the whole batch's tags, as for running
    row = fleet.registry.get(launching[0])
    assert row is not None
    assert (row["state"], row["managed"]) == ("pending", True)
    assert row["array_id"] == "render-20260127-a1b2c3"
    assert fleet.alarm_names() == set()  # alarms wait for running
    view = _fleet_view(fleet)
    assert view["instances"]["by_state"] == {"pending": 3}
    assert view["instances"]["total"] == 3
    assert view["instances"]["running"] == 0


def test_a_late_pending_never_moves_a_running_instance_back(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running", later(10))])
    earlier = fleet.event(instance, "pending", later(5))
    same_second = fleet.event(instance, "pending", later(10))  # pending ranks below running
    outcome = fleet.lifecycle.handle([earlier])
    outcome2 = fleet.lifecycle.handle([same_second])
    assert outcome.stale + outcome2.stale == 2
    row = fleet.registry.get(instance)
    assert row is not None
    assert (row["state"], row["managed"]) == ("running", True)
    assert fleet.alarmed_instances() == {instance}
    assert _fleet_view(fleet)["instances"]["by_state"] == {"running": 1}
