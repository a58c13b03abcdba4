"""The reconciler heals what events missed (SPEC §5 invariant), on moto."""

from __future__ import annotations

from botocore.stub import Stubber

from chalicelib.alarms.per_instance import alarm_names
from chalicelib.fleet.reconcile import reconcile
from tests.integration.conftest import T0, Fleet, later


def _reconcile(fleet: Fleet) -> object:
    return reconcile(
        settings=fleet.settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(600),
    )


def _orphan(fleet: Fleet, instance_id: str) -> None:
    from chalicelib.alarms.per_instance import ALARM_KINDS, Watched, alarm_request

    for kind in ALARM_KINDS:
        fleet.cloudwatch.put_metric_alarm(
            **alarm_request(
                Watched(instance_id),
                kind,
                topic_arn=fleet.topic_arn,
                region="us-east-1",
                recover=False,
            )
        )


def test_missing_alarms_are_created_and_the_instance_adopted(fleet: Fleet) -> None:
    instances = fleet.launch(3)
    [unmanaged] = fleet.launch(tags={"Name": "not ours"})
    fleet.lifecycle.handle([fleet.event(instances[0], "running")])  # the others' events were lost

    report = _reconcile(fleet)

    assert fleet.alarmed_instances() == set(instances)
    assert unmanaged not in fleet.alarmed_instances()
    assert report.alarms_created_for == 2  # type: ignore[attr-defined]
    assert report.adopted == 2  # type: ignore[attr-defined]
    row = fleet.registry.get(instances[1])
    assert row is not None
    assert row["state"] == "running"
    assert row["array_id"] == "render-20260127-a1b2c3"


def test_orphaned_alarms_are_deleted_and_ghosts_corrected(fleet: Fleet) -> None:
    [kept, ended] = fleet.launch(2)
    fleet.lifecycle.handle([fleet.event(i, "running") for i in (kept, ended)])
    fleet.ec2.terminate_instances(InstanceIds=[ended])  # its terminated event was lost
    _orphan(fleet, "i-0000000000000dead")  # left over from an instance long gone

    _reconcile(fleet)

    assert fleet.alarmed_instances() == {kept}
    row = fleet.registry.get(ended)
    assert row is not None
    assert row["state"] == "terminated"


def test_stopped_instances_are_not_watched(fleet: Fleet) -> None:
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.stop_instances(InstanceIds=[instance])
    _reconcile(fleet)
    assert fleet.alarm_names() == set()


def test_more_than_100_orphans_are_deleted_in_chunks_of_at_most_100(fleet: Fleet) -> None:
    orphans = [f"i-{n:017x}" for n in range(1, 131)]
    for instance_id in orphans:
        _orphan(fleet, instance_id)
    sizes: list[int] = []
    fleet.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.DeleteAlarms",
        lambda params, **_: sizes.append(len(params["AlarmNames"])),
    )
    report = _reconcile(fleet)
    assert report.alarms_deleted == 260  # type: ignore[attr-defined]
    assert sizes == [100, 100, 60]  # moto would take all 260 at once; CloudWatch would not
    assert fleet.alarm_names() == set()


def test_reconcile_twice_changes_nothing_the_second_time(fleet: Fleet) -> None:
    fleet.launch(4)
    _reconcile(fleet)
    second = _reconcile(fleet)
    assert (second.alarms_created_for, second.alarms_deleted, second.adopted) == (0, 0, 0)  # type: ignore[attr-defined]


def test_alarm_listing_follows_every_page(fleet: Fleet) -> None:
    # moto never paginates DescribeAlarms, so the pages CloudWatch would return are stubbed.
    names = alarm_names("i-0aaaaaaaaaaaaaaaa") + alarm_names("i-0bbbbbbbbbbbbbbbb")
    stub = Stubber(fleet.cloudwatch)
    request = {
        "AlarmNamePrefix": "spawn-instance-",
        "AlarmTypes": ["MetricAlarm"],
        "MaxRecords": 100,
    }
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [{"AlarmName": n} for n in names[:3]], "NextToken": "page-2"},
        request,
    )
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [{"AlarmName": names[3]}]},
        {**request, "NextToken": "page-2"},
    )
    with stub:
        assert fleet.alarms.list_names() == set(names)
    stub.assert_no_pending_responses()


def test_delete_of_an_alarm_that_vanished_meanwhile_deletes_the_rest(fleet: Fleet) -> None:
    # CloudWatch refuses a whole DeleteAlarms call naming a missing alarm; moto does not,
    # so CloudWatch's answers are stubbed: the retry must name only the alarms that exist.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running", T0)])
    present = alarm_names(instance)
    stub = Stubber(fleet.cloudwatch)
    stub.add_client_error("delete_alarms", "ResourceNotFound", http_status_code=404)
    stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": n} for n in present]})
    stub.add_response("delete_alarms", {}, {"AlarmNames": present})
    with stub:
        fleet.alarms.delete([*present, "spawn-instance-i-0ffffffffffffffff-status"])
    stub.assert_no_pending_responses()


def test_alarms_made_while_it_runs_are_not_taken_for_orphans(fleet: Fleet) -> None:
    [early] = fleet.launch()
    made: list[str] = []

    def lifecycle_meanwhile(**_: object) -> None:
        # The lifecycle handler brings an instance up between the two listings.
        if not made:
            [late] = fleet.launch()
            made.append(late)
            fleet.lifecycle.handle([fleet.event(late, "running")])

    fleet.ec2.meta.events.register("after-call.ec2.DescribeInstances", lifecycle_meanwhile)
    _reconcile(fleet)
    assert fleet.alarmed_instances() >= {early, *made}


def test_tags_added_after_launch_make_the_instance_managed_for_good(fleet: Fleet) -> None:
    [instance] = fleet.launch(tags={"Name": "not yet"})
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.create_tags(Resources=[instance], Tags=[{"Key": "spawn:managed", "Value": "true"}])
    report = _reconcile(fleet)
    assert report.corrected == 1  # type: ignore[attr-defined]
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["managed"] is True
    assert "expires_at" not in row
    fleet.lifecycle.handle([fleet.event(instance, "terminated", later(900))])
    assert fleet.alarm_names() == set()  # the terminate now takes its alarms with it


def test_a_managed_tag_in_any_case_is_watched_by_both_paths(fleet: Fleet) -> None:
    [instance] = fleet.launch(tags={"spawn:managed": " True "})
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    _reconcile(fleet)
    assert fleet.alarmed_instances() == {instance}


def test_work_beyond_the_time_budget_is_left_for_the_next_run(fleet: Fleet) -> None:
    fleet.launch(10)
    rate = fleet.alarms.put_limiter.rate
    first = reconcile(
        settings=fleet.settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(600),
        budget_seconds=8 / rate,  # room for 8 puts: 4 instances
    )
    assert (first.alarms_created_for, first.deferred) == (4, 6)
    assert len(fleet.alarmed_instances()) == 4
    assert _reconcile(fleet).deferred == 0  # type: ignore[attr-defined]
    assert len(fleet.alarmed_instances()) == 10


def test_an_instance_terminated_while_marked_managed_keeps_its_expiry(fleet: Fleet) -> None:
    # J: the reconciler read the registry while the instance ran, unmanaged; it is tagged
    # managed, then terminated before the reconciler marks it managed.
    [instance] = fleet.launch(tags={"Name": "not yet"})
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.create_tags(Resources=[instance], Tags=[{"Key": "spawn:managed", "Value": "true"}])
    ended: list[bool] = []

    def terminated_meanwhile(**_: object) -> None:
        if not ended:
            ended.append(True)
            fleet.ec2.terminate_instances(InstanceIds=[instance])
            fleet.lifecycle.handle([fleet.event(instance, "terminated", later(300))])

    fleet.registry.dynamodb.meta.events.register("after-call.dynamodb.Scan", terminated_meanwhile)
    _reconcile(fleet)
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "terminated"
    assert "expires_at" in row  # else the row of a gone instance is kept forever


def _fleet_view(fleet: Fleet) -> dict[str, object]:
    from chalicelib.fleet.health import EMPTY_TOTALS, snapshot

    return snapshot(fleet.registry.all(), EMPTY_TOTALS, later(600))


def test_a_stopped_row_whose_instance_runs_again_is_recorded_running(fleet: Fleet) -> None:
    # A: the restart's running event was lost; /fleet and health must count the instance.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.stop_instances(InstanceIds=[instance])
    fleet.lifecycle.handle([fleet.event(instance, "stopped", later(60))])
    fleet.ec2.start_instances(InstanceIds=[instance])

    report = _reconcile(fleet)

    assert fleet.alarmed_instances() == {instance}
    row = fleet.registry.get(instance)
    assert row is not None
    assert (row["state"], row["managed"], row["gone"]) == ("running", True, False)
    assert row["array_id"] == "render-20260127-a1b2c3"
    assert report.corrected == 1  # type: ignore[attr-defined]
    view = _fleet_view(fleet)
    assert view["instances"] == {
        "total": 1,
        "running": 1,
        "by_state": {"running": 1},
        "by_type": {"m1.small": 1},
        "by_availability_zone": {"us-east-1a": 1},
        "by_lifecycle": {"on-demand": 1},
    }
    assert view["active_arrays"] == ["render-20260127-a1b2c3"]


def test_a_pending_row_whose_running_event_came_too_early_is_recorded_running(
    fleet: Fleet,
) -> None:
    # A: "running" arrived before DescribeInstances showed the instance, and was dropped.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "pending")])
    _reconcile(fleet)
    row = fleet.registry.get(instance)
    assert row is not None
    assert (row["state"], row["managed"]) == ("running", True)
    assert _fleet_view(fleet)["instances"]["running"] == 1  # type: ignore[index]


def test_a_stopped_row_whose_instance_was_terminated_is_marked_gone(fleet: Fleet) -> None:
    # A: stopped, then terminated with the event lost: the row must end and expire.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "running")])
    fleet.ec2.stop_instances(InstanceIds=[instance])
    fleet.lifecycle.handle([fleet.event(instance, "stopped", later(60))])
    fleet.ec2.terminate_instances(InstanceIds=[instance])
    _reconcile(fleet)
    row = fleet.registry.get(instance)
    assert row is not None
    assert (row["state"], row["gone"]) == ("terminated", True)
    assert "expires_at" in row
    assert _fleet_view(fleet)["instances"]["total"] == 0  # type: ignore[index]


def test_a_change_recorded_while_reconciling_is_not_overwritten(fleet: Fleet) -> None:
    # The reconciler saw the instance running; a stop it did not see is recorded after.
    [instance] = fleet.launch()
    fleet.lifecycle.handle([fleet.event(instance, "pending")])
    stopped: list[bool] = []

    def stopped_meanwhile(**_: object) -> None:
        if not stopped:
            stopped.append(True)
            fleet.ec2.stop_instances(InstanceIds=[instance])
            fleet.lifecycle.handle([fleet.event(instance, "stopped", later(605))])

    fleet.ec2.meta.events.register("after-call.ec2.DescribeInstances", stopped_meanwhile)
    _reconcile(fleet)
    row = fleet.registry.get(instance)
    assert row is not None
    assert row["state"] == "stopped"


def test_an_adopted_instance_registers_its_array_and_owner(fleet: Fleet) -> None:
    # Every event of the array was lost: without its registration the API cannot tell
    # whose array it is, nor how many workers have not reported yet.
    from chalicelib.fleet.registrations import ArrayRecord
    from chalicelib.fleet.stats import Stats

    stats = Stats(fleet.clients.dynamodb, fleet.settings.stats_table)
    tags = {
        "spawn:managed": "true",
        "spawn:job-array-id": "render-20260127-a1b2c3",
        "spawn:job-array-name": "render",
        "spawn:job-array-size": "40",
        "spawn:iam-user": "arn:aws:iam::123456789012:user/alice",
    }
    fleet.launch(2, tags=tags)

    reconcile(
        settings=fleet.settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(600),
        arrays=stats,
    )

    record = stats.array_record("render-20260127-a1b2c3")
    assert record == ArrayRecord(
        "render-20260127-a1b2c3", "render", 40, "arn:aws:iam::123456789012:user/alice"
    )


def _launching(fleet: Fleet, instance_id: str) -> None:
    # moto moves an instance to running at once; its backend is set back to pending so
    # the listing shows a launching instance.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.get_instance(instance_id)._state.name = "pending"


def test_a_pending_managed_instance_whose_event_was_lost_is_recorded_as_the_lifecycle_would(
    fleet: Fleet,
) -> None:
    [missed, seen] = fleet.launch(2)
    [unmanaged] = fleet.launch(tags={"Name": "not ours"})
    for instance in (missed, seen, unmanaged):
        _launching(fleet, instance)
    fleet.lifecycle.handle([fleet.event(seen, "pending")])
    by_lifecycle = fleet.registry.get(seen)

    report = _reconcile(fleet)

    assert report.adopted == 1  # type: ignore[attr-defined]
    assert report.running == 0  # type: ignore[attr-defined]
    assert fleet.alarm_names() == set()
    row = fleet.registry.get(missed)
    assert row is not None
    assert (row["state"], row["managed"]) == ("pending", True)
    assert row["array_id"] == "render-20260127-a1b2c3"
    assert fleet.registry.get(seen) == by_lifecycle  # the lifecycle's record agrees
    assert fleet.registry.get(unmanaged) is None
    assert _fleet_view(fleet)["instances"]["by_state"] == {"pending": 2}
