"""The console setup on moto: it creates what moto can hold, changes only what drifted,
leaves anyone else's resources alone, and a second run makes no write call.

moto lacks composite alarms, anomaly detectors and query definitions: those calls are
skipped here exactly as the local stack skips them (`CONSOLE_SKIP_CALLS`), and their
exact requests are tested with botocore's Stubber in `test_console_stubbed.py`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.console.alarms import MARKER, Topics
from chalicelib.console.description import Deployment
from chalicelib.console.setup import ConsoleSetup, SetupIncomplete
from chalicelib.core.clients import Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.fleet.events import epoch_ms
from chalicelib.progress.store import SummaryStore
from chalicelib.progress.summary import Summary
from local.provision import Provisioned, provision
from testkit.faults import count_calls

NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
MOTO_LACKS = (
    "PutCompositeAlarm",
    "PutAnomalyDetector",
    "DescribeAnomalyDetectors",
    "DeleteAnomalyDetector",
    "PutQueryDefinition",
    "DescribeQueryDefinitions",
    "DeleteQueryDefinition",
)
MOTO_HOLDS = {
    "spawn-fleet-unhealthy",
    "spawn-fleet-error-rate",
    "spawn-low-throughput",
    "spawn-daily-cost-limit",
    "spawn-cpu-anomaly",
    "spawn-cost-anomaly",
}
WRITES = ("Put", "Create", "Delete", "Tag")


def make_setup(
    session: boto3.Session,
    infra: Provisioned | None = None,
    limiter: RateLimiter | None = None,
    **settings: Any,
) -> ConsoleSetup:
    aws = Clients(session)
    alerts = infra.arns["AlertsTopic"] if infra else "arn:aws:sns:eu-west-1:123456789012:a"
    critical = infra.arns["CriticalTopic"] if infra else "arn:aws:sns:eu-west-1:123456789012:c"
    return ConsoleSetup(
        Settings(console_skip_calls=MOTO_LACKS, **settings),
        Deployment(aws.region, aws.account_id, Topics(alerts, critical, None)),
        {aws.region: aws.cloudwatch, "us-east-1": aws.billing_cloudwatch},
        aws.logs,
        aws.dynamodb,
        alarm_limiter=limiter or RateLimiter(10_000, burst=10_000),
    )


def add_array(session: boto3.Session, array_id: str, finished: datetime | None = None) -> None:
    summary = Summary.new(array_id)
    if finished:
        summary = replace(summary, final_published=True, last_change_ms=epoch_ms(finished))
    SummaryStore(session.client("dynamodb"), Settings().arrays_table).save(summary)


def writes(*counters: dict[str, int]) -> dict[str, int]:
    return {op: n for c in counters for op, n in c.items() if op.startswith(WRITES)}


def alarm_names(session: boto3.Session, region: str = "us-east-1") -> set[str]:
    client = session.client("cloudwatch", region_name=region)
    return {a["AlarmName"] for a in client.describe_alarms()["MetricAlarms"]}


def dashboard_names(session: boto3.Session) -> set[str]:
    listed = session.client("cloudwatch").list_dashboards()["DashboardEntries"]
    return {d["DashboardName"] for d in listed}


@pytest.fixture
def setup(session: boto3.Session, infra: Provisioned) -> ConsoleSetup:
    return make_setup(session, infra)


def test_a_second_run_makes_no_write_call(
    session: boto3.Session, infra: Provisioned, setup: ConsoleSetup
) -> None:
    add_array(session, "render-20260127-a1b2c3")
    add_array(session, "v2.train:run_7")
    first = setup.run(NOW)
    assert first.writes == {
        "CreateLogGroup": 3,
        "PutRetentionPolicy": 3,
        "PutMetricFilter": 2,
        "PutMetricAlarm": 6,
        "PutDashboard": 3,
    }
    assert first.skipped == {
        "PutAnomalyDetector": 2,
        "PutCompositeAlarm": 1,
        "PutQueryDefinition": 3,
    }

    cloudwatch = count_calls(setup.cloudwatch_by_region["us-east-1"])
    logs = count_calls(setup.logs)
    second = setup.run(NOW + timedelta(minutes=5))
    assert second.write_count == 0
    assert writes(cloudwatch, logs) == {}
    assert cloudwatch["GetDashboard"] == 3  # bodies compared, not rewritten

    assert alarm_names(session) == MOTO_HOLDS
    assert dashboard_names(session) == {
        "spawn-fleet",
        "spawn-array-render-20260127-a1b2c3",
        "spawn-array-v2_dtrain_crun__7",
    }
    groups = session.client("logs").describe_log_groups(logGroupNamePrefix="/aws/spawn/")
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups["logGroups"]} == {
        "/aws/spawn/workers": 7,
        "/aws/spawn/spored": 7,
        "/aws/spawn/errors": 30,
    }
    [unhealthy] = session.client("cloudwatch").describe_alarms(
        AlarmNames=["spawn-fleet-unhealthy"]
    )["MetricAlarms"]
    assert unhealthy["Threshold"] == 5.0
    assert unhealthy["AlarmActions"] == [infra.arns["CriticalTopic"]]


def test_drift_heals_with_exactly_the_writes_it_needs(
    session: boto3.Session, setup: ConsoleSetup
) -> None:
    setup.run(NOW)
    cloudwatch, logs = session.client("cloudwatch"), session.client("logs")
    [rate] = cloudwatch.describe_alarms(AlarmNames=["spawn-fleet-error-rate"])["MetricAlarms"]
    keys = ("AlarmName", "AlarmDescription", "Metrics", "EvaluationPeriods", "ComparisonOperator")
    cloudwatch.put_metric_alarm(**{k: rate[k] for k in keys}, Threshold=50.0)
    cloudwatch.put_dashboard(DashboardName="spawn-fleet", DashboardBody='{"widgets": []}')
    logs.put_retention_policy(logGroupName="/aws/spawn/errors", retentionInDays=1)
    logs.delete_metric_filter(logGroupName="/aws/spawn/workers", filterName="spawn-error-types")

    healed = setup.run(NOW)
    assert healed.writes == {
        "PutRetentionPolicy": 1,
        "PutMetricFilter": 1,
        "PutMetricAlarm": 1,
        "PutDashboard": 1,
    }
    [rate] = cloudwatch.describe_alarms(AlarmNames=["spawn-fleet-error-rate"])["MetricAlarms"]
    assert rate["Threshold"] == 5.0
    assert setup.run(NOW).write_count == 0


def test_a_changed_setting_updates_the_fleet_alarm_in_place(
    session: boto3.Session, infra: Provisioned, setup: ConsoleSetup
) -> None:
    setup.run(NOW)
    stricter = make_setup(session, infra, unhealthy_percent_threshold=2)
    report = stricter.run(NOW)
    assert report.writes == {"PutMetricAlarm": 1, "PutDashboard": 1}  # the line on the graph
    [alarm] = session.client("cloudwatch").describe_alarms(AlarmNames=["spawn-fleet-unhealthy"])[
        "MetricAlarms"
    ]
    assert alarm["Threshold"] == 2.0


def test_what_it_no_longer_describes_goes_and_nothing_of_anyone_else(
    session: boto3.Session, setup: ConsoleSetup
) -> None:
    cloudwatch, logs = session.client("cloudwatch"), session.client("logs")
    alarm = {
        "Namespace": "AWS/EC2",
        "MetricName": "StatusCheckFailed_Instance",
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    cloudwatch.put_metric_alarm(AlarmName="spawn-instance-i-0123456789abcdef0-status", **alarm)
    cloudwatch.put_metric_alarm(AlarmName="spawn-my-own", AlarmDescription="mine", **alarm)
    cloudwatch.put_metric_alarm(
        AlarmName="spawn-retired", AlarmDescription=f"an older version's {MARKER}", **alarm
    )
    cloudwatch.put_dashboard(DashboardName="spawn-costs", DashboardBody='{"widgets": []}')
    cloudwatch.put_dashboard(DashboardName="spawn-array-gone-1", DashboardBody='{"widgets": []}')
    logs.create_log_group(logGroupName="/aws/spawn/workers")
    transformation = [{"metricName": "M", "metricNamespace": "Mine", "metricValue": "1"}]
    for name in ("task-duration", "spawn-renamed-filter"):
        logs.put_metric_filter(
            logGroupName="/aws/spawn/workers",
            filterName=name,
            filterPattern="ERROR",
            metricTransformations=transformation,
        )

    report = setup.run(NOW)

    assert report.writes["DeleteAlarms"] == 1
    assert report.writes["DeleteDashboards"] == 1
    assert report.writes["DeleteMetricFilter"] == 1
    assert report.writes["CreateLogGroup"] == 2  # workers' group existed already
    assert alarm_names(session) == MOTO_HOLDS | {
        "spawn-instance-i-0123456789abcdef0-status",
        "spawn-my-own",
    }
    assert dashboard_names(session) == {"spawn-fleet", "spawn-costs"}
    filters = logs.describe_metric_filters(logGroupName="/aws/spawn/workers")["metricFilters"]
    assert {f["filterName"] for f in filters} == {
        "task-duration",
        "spawn-task-duration",
        "spawn-error-types",
    }


def test_array_dashboards_come_with_arrays_and_go_after_the_retention(
    session: boto3.Session, infra: Provisioned
) -> None:
    setup = make_setup(session, infra, array_dashboard_retention_hours=1)
    cloudwatch = session.client("cloudwatch")
    cloudwatch.put_dashboard(DashboardName="spawn-array-orphan-1", DashboardBody="{}")
    cloudwatch.put_dashboard(DashboardName="spawn-costs", DashboardBody="{}")
    add_array(session, "running-1")
    add_array(session, "done-1", finished=NOW - timedelta(minutes=30))
    add_array(session, "long-done-1", finished=NOW - timedelta(hours=2))

    calls = count_calls(setup.cloudwatch_by_region["us-east-1"])
    report = setup.sync_array_dashboards(NOW)
    assert report.writes == {"PutDashboard": 2, "DeleteDashboards": 1}
    assert "GetDashboard" not in calls
    assert dashboard_names(session) == {
        "spawn-costs",
        "spawn-array-running-1",
        "spawn-array-done-1",
    }
    assert setup.sync_array_dashboards(NOW).write_count == 0

    later = setup.sync_array_dashboards(NOW + timedelta(minutes=31))
    assert later.writes == {"DeleteDashboards": 1}
    assert dashboard_names(session) == {"spawn-costs", "spawn-array-running-1"}


def test_a_stack_outside_us_east_1_keeps_billing_alarms_there(
    session: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    ireland = boto3.Session(region_name="eu-west-1")
    provision(ireland)
    elsewhere = make_setup(ireland)
    caplog.set_level(logging.WARNING, logger="chalicelib.console.setup")
    elsewhere.run(NOW)
    elsewhere.run(NOW)
    assert alarm_names(session, "us-east-1") == {"spawn-daily-cost-limit", "spawn-cost-anomaly"}
    assert alarm_names(session, "eu-west-1") == MOTO_HOLDS - {
        "spawn-daily-cost-limit",
        "spawn-cost-anomaly",
    }
    us_east_1 = session.client("cloudwatch", region_name="us-east-1")
    for alarm in us_east_1.describe_alarms()["MetricAlarms"]:
        assert alarm["AlarmActions"] == []  # no topic of this stack can be reached there
    messages = [r.getMessage() for r in caplog.records]
    assert sum("billing alarms live in us-east-1" in m for m in messages) == 1
    assert sum("lacks some CloudWatch APIs" in m for m in messages) == 1


def test_alarm_writes_are_paced_under_the_quota(session: boto3.Session, infra: Provisioned) -> None:
    waited: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        clock[0] += seconds

    paced = make_setup(session, infra, RateLimiter(1.0, clock=lambda: clock[0], sleep=sleep))
    paced.run(NOW)
    # Six PutMetricAlarm at 1 a second: the first goes at once, then one a second.
    assert sum(waited) == pytest.approx(5.0)


def _fail(operation: str, code: str) -> Any:
    def hook(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != operation:
            return None
        response = AWSResponse("https://monitoring", 400, {}, None)
        return response, {"Error": {"Code": code, "Message": "denied"}, "ResponseMetadata": {}}

    return hook


def test_a_failed_write_does_not_stop_the_others(
    session: boto3.Session, infra: Provisioned
) -> None:
    setup = make_setup(session, infra)
    setup.cloudwatch_by_region["us-east-1"].meta.events.register(
        "before-call.cloudwatch.PutDashboard", _fail("PutDashboard", "AccessDenied")
    )
    with pytest.raises(SetupIncomplete, match="PutDashboard spawn-fleet: AccessDenied"):
        setup.run(NOW)
    assert alarm_names(session) == MOTO_HOLDS
    assert dashboard_names(session) == set()


def test_the_deployed_functions_say_what_this_endpoint_lacks_once_per_process(
    session: boto3.Session,
    infra: Provisioned,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Each scheduled run of `setup` (and each minute's array dashboards) asks the runtime
    # for the console; a new one per call would say it again every run. The runtime's
    # loggers write Powertools JSON lines to stdout.
    from chalicelib.container import Container
    from chalicelib.core.clients import Clients
    from chalicelib.core.observability import configure_logging
    from chalicelib.core.settings import Settings
    from local.stack import LOCAL_DEFAULTS

    monkeypatch.setenv("CONSOLE_SKIP_CALLS", LOCAL_DEFAULTS["CONSOLE_SKIP_CALLS"])
    configure_logging()
    wiring = Container(Settings.from_env(), Clients(session))
    wiring.console.run(NOW)
    wiring.console.run(NOW + timedelta(hours=6))
    assert capsys.readouterr().out.count("lacks some CloudWatch APIs") == 1
