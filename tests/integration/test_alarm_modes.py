"""ALARM_MODE: fleet-query alarms, the switch both ways, its precondition, the grace
period, and health from contributors (SPEC §5), on moto.

moto stores `PutMetricAlarm` with `Metrics` but never evaluates it and has no
`observabilityadmin` or `DescribeAlarmContributors`: those are answered through botocore's
`Stubber` (observabilityadmin) or a `before-call` answer on the one operation
(`DescribeAlarmContributors`), each with the exact request checked.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.stub import Stubber

from chalicelib.alarms.fleet_query import FLEET_ALARM_NAMES, FleetQueryAlarms, query_expression
from chalicelib.alarms.modes import AlarmModes, TelemetryEnrichment
from chalicelib.alarms.per_instance import ALARM_KINDS, Watched, alarm_names
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.fleet.lifecycle import Lifecycle
from chalicelib.fleet.reconcile import reconcile
from chalicelib.fleet.registry import describe_managed_running
from testkit.faults import count_calls, throttle
from tests.integration.conftest import Fleet, container, later

QUERY_NAMES = set(FLEET_ALARM_NAMES.values())
FAST = RateLimiter(10_000, burst=10_000)


def _telemetry(session: boto3.Session, *statuses: str) -> Any:
    """An observabilityadmin client answering the status checks in turn (Stubber); a
    status ending in `Exception` is answered as that error instead. Any other call
    (`StartTelemetryEnrichment`) finds no answer queued and fails the test."""
    client = session.client("observabilityadmin")
    stubber = Stubber(client)
    for status in statuses:
        if status.endswith("Exception"):
            stubber.add_client_error(
                "get_telemetry_enrichment_status", status, "not authorized", 400, {}
            )
        else:
            stubber.add_response("get_telemetry_enrichment_status", {"Status": status}, {})
    stubber.activate()
    client.stubber = stubber
    return client


def _modes(fleet: Fleet, wanted: str, telemetry: Any) -> AlarmModes:
    settings = replace(fleet.settings, alarm_mode=wanted)
    alarms = FleetQueryAlarms(
        fleet.cloudwatch,
        settings,
        topic_arn=fleet.topic_arn,
        region="us-east-1",
        put_limiter=FAST,
        delete_limiter=FAST,
    )
    return AlarmModes(wanted, alarms, TelemetryEnrichment(telemetry, region="eu-west-1"))


def _lifecycle(fleet: Fleet, modes: AlarmModes) -> Lifecycle:
    wiring = container(fleet.clients, replace(fleet.settings, alarm_mode=modes.wanted))
    wiring.alarm_modes = modes  # a fake: the stubbed precondition
    return wiring.lifecycle


def _reconcile(fleet: Fleet, modes: AlarmModes, **kwargs: Any) -> Any:
    settings = replace(fleet.settings, alarm_mode=modes.wanted)
    return reconcile(
        settings=settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=kwargs.pop("now", later(3600)),
        modes=modes,
        **kwargs,
    )


def _query_alarms(fleet: Fleet) -> dict[str, dict[str, Any]]:
    response = fleet.cloudwatch.describe_alarms(AlarmNames=sorted(QUERY_NAMES))
    return {a["AlarmName"]: a for a in response["MetricAlarms"]}


class Watch:
    """Checks, before every alarm delete, that no running managed instance would be left
    unwatched by it: it keeps both its own alarms, or both query alarms exist (their
    precondition holds in these tests)."""

    def __init__(self, session: boto3.Session, fleet: Fleet) -> None:
        self.reader = session.client("cloudwatch")
        self.ec2 = session.client("ec2")
        self.settings = fleet.settings
        self.checks = 0
        fleet.cloudwatch.meta.events.register(
            "provide-client-params.cloudwatch.DeleteAlarms", self._before_delete
        )

    def unwatched(self, deleting: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        names = {
            a["AlarmName"]
            for page in self.reader.get_paginator("describe_alarms").paginate()
            for a in page["MetricAlarms"]
        } - deleting
        if names >= QUERY_NAMES:
            return []
        running = describe_managed_running(self.ec2, self.settings)
        return sorted(i for i in running if not names.issuperset(alarm_names(i)))

    def _before_delete(self, params: dict[str, Any], **_: Any) -> None:
        self.checks += 1
        assert self.unwatched(set(params["AlarmNames"])) == []


def test_the_query_alarms_are_exactly_as_described(session: boto3.Session, fleet: Fleet) -> None:
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    summary = modes.prepare()
    assert summary["alarm_mode"] == "fleet-query"
    alarms = _query_alarms(fleet)
    assert set(alarms) == QUERY_NAMES
    status = alarms["spawn-fleet-status-check"]
    [query] = status["Metrics"]
    # WHERE uses `=` alone: the query reference documents `=`, `!=` and `AND`, not `OR`
    # or parentheses, nor `!=` on a resource that lacks the tag.
    assert query["Expression"] == (
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId)'
        " WHERE tag.\"spawn:managed\" = 'true'"
        " GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500"
    )
    assert query["Period"] == 60
    assert status["AlarmActions"] == [fleet.topic_arn] == status["OKActions"]
    assert status["Threshold"] == 1.0
    assert status["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert status["EvaluationPeriods"] == 2
    assert (
        "StatusCheckFailed_System"
        in _query_alarms(fleet)["spawn-fleet-system-check"]["Metrics"][0]["Expression"]
    )
    # A second run finds them matching and writes nothing.
    again = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    assert again.prepare()["query_alarms_written"] == []


def test_a_changed_query_alarm_is_put_back(session: boto3.Session, fleet: Fleet) -> None:
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running", "Running"))
    modes.prepare()
    edited = modes.fleet_alarms.wanted()[1]
    edited["Threshold"] = 5.0
    fleet.cloudwatch.put_metric_alarm(**edited)
    assert modes.prepare()["query_alarms_written"] == ["spawn-fleet-system-check"]
    assert _query_alarms(fleet)["spawn-fleet-system-check"]["Threshold"] == 1.0


def test_the_query_filters_on_the_first_managed_key_with_documented_syntax() -> None:
    from chalicelib.alarms.per_instance import ALARM_KINDS

    settings = Settings(managed_tag_keys=("team:spawned", "team"), opt_out_tag="team:watch")
    expression = query_expression(ALARM_KINDS[0], settings)
    where = expression.split(" WHERE ", 1)[1].split(" GROUP BY ", 1)[0]
    assert where == "tag.\"team:spawned\" = 'true'"
    for undocumented in (" OR ", "(", "!="):
        assert undocumented not in where


def test_fleet_query_refuses_to_start_without_tags_on_telemetry(
    session: boto3.Session, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    [instance] = fleet.launch()
    telemetry = _telemetry(session, "Stopped", "Stopped")
    modes = _modes(fleet, "fleet-query", telemetry)
    with caplog.at_level(logging.ERROR):
        summary = modes.prepare()
    assert summary["alarm_mode"] == "per-instance"
    assert summary["telemetry_enrichment"] == "Stopped"
    command = "aws observabilityadmin start-telemetry-enrichment --region eu-west-1"
    assert command in str(summary["fix"])
    assert "cannot start" in caplog.text
    assert command in caplog.text
    # What the administrator who runs it needs, named in full.
    for action in (
        "observabilityadmin:StartTelemetryEnrichment",
        "iam:CreateServiceLinkedRole",
        "resource-explorer-2:CreateIndex",
        "resource-explorer-2:CreateManagedView",
        "resource-explorer-2:CreateStreamingAccessForService",
    ):
        assert action in caplog.text
    assert _query_alarms(fleet) == {}
    # The reconciler keeps per-instance alarms instead of watching nothing.
    report = _reconcile(fleet, modes)
    assert report.mode == "per-instance"
    assert fleet.alarmed_instances() == {instance}
    telemetry.stubber.assert_no_pending_responses()


@pytest.mark.parametrize("answer", ["Stopped", "Impaired", "AccessDeniedException"])
def test_setup_never_turns_tags_on_telemetry_on_itself(
    session: boto3.Session, fleet: Fleet, answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Enablement is the administrator's one-time step: setup reads the status only (the
    # Stubber has no answer for StartTelemetryEnrichment, so a call would raise), and a
    # status it may not read is not taken for on.
    telemetry = _telemetry(session, answer)
    with caplog.at_level(logging.ERROR):
        summary = _modes(fleet, "fleet-query", telemetry).prepare()
    telemetry.stubber.assert_no_pending_responses()
    assert summary["alarm_mode"] == "per-instance"
    status = "AccessDenied" if answer.startswith("AccessDenied") else answer
    assert summary["telemetry_enrichment"] == status
    assert "start-telemetry-enrichment --region eu-west-1" in caplog.text
    if status == "AccessDenied":
        assert "observabilityadmin:GetTelemetryEnrichmentStatus" in caplog.text
    assert _query_alarms(fleet) == {}


def test_no_code_path_starts_telemetry_enrichment() -> None:
    # The per-function policies are derived from the calls the code makes: without a
    # call there is no grant of this account-wide action to any function.
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [*root.joinpath("chalicelib").rglob("*.py"), root / "app.py"]
    assert not [p for p in sources if "start_telemetry_enrichment" in p.read_text()]


def test_in_fleet_query_the_lifecycle_makes_no_alarm_calls_but_keeps_the_registry(
    session: boto3.Session, fleet: Fleet
) -> None:
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    modes.prepare()
    lifecycle = _lifecycle(fleet, modes)
    calls = count_calls(fleet.cloudwatch)
    instances = fleet.launch(3)

    outcome = lifecycle.handle([fleet.event(i, "running") for i in instances])
    lifecycle.handle([fleet.event(instances[0], "terminated", later(60))])

    writes = {k: v for k, v in calls.items() if k in ("PutMetricAlarm", "DeleteAlarms")}
    assert writes == {}
    assert calls == {"DescribeAlarms": 1}  # one check a minute that the query alarms exist
    assert outcome.recorded == 3
    assert outcome.alarms_put == 0
    row = fleet.registry.get(instances[1])
    assert row is not None
    assert row["state"] == "running"
    assert row["managed"] is True
    gone = fleet.registry.get(instances[0])
    assert gone is not None
    assert gone["state"] == "terminated"


def test_switching_both_ways_under_throttling_never_leaves_an_instance_unwatched(
    session: boto3.Session, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's retry backoff after a throttle need not take real time here (standard
    # mode: adaptive mode's client-side rate limiter would wait on a condition instead).
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _: None)
    retrying = Config(retries={"mode": "standard", "max_attempts": 10})
    fleet.cloudwatch = session.client("cloudwatch", config=retrying)
    fleet.alarms = replace(fleet.alarms, cloudwatch=fleet.cloudwatch)
    watch = Watch(session, fleet)
    _answer_contributors(fleet, {})
    calls = iter(range(10_000))
    # Every third alarm write is throttled; botocore retries it (adaptive mode).
    puts = throttle(fleet.cloudwatch, "PutMetricAlarm", lambda: next(calls) % 3 == 0)
    deletes = throttle(fleet.cloudwatch, "DeleteAlarms", lambda: next(calls) % 3 == 0)
    per_instance = _modes(fleet, "per-instance", None)
    first = fleet.launch(4)
    _lifecycle(fleet, per_instance).handle([fleet.event(i, "running") for i in first])
    assert watch.unwatched() == []

    # Deployed with ALARM_MODE=fleet-query: until the query alarms exist, the lifecycle
    # still puts per-instance alarms.
    to_query = _modes(fleet, "fleet-query", _telemetry(session, "Running", "Running"))
    lifecycle = _lifecycle(fleet, to_query)
    [early] = fleet.launch()
    lifecycle.handle([fleet.event(early, "running")])
    assert watch.unwatched() == []
    assert early in fleet.alarmed_instances()

    to_query.prepare()  # setup on deploy: the query alarms first
    [late] = fleet.launch()
    lifecycle.handle([fleet.event(late, "running")])
    assert late not in fleet.alarmed_instances()  # the query alarms watch it
    assert watch.unwatched() == []

    report = _reconcile(fleet, to_query)  # per-instance alarms go, paced
    assert report.mode == "fleet-query"
    assert report.alarms_deleted == 2 * 5
    assert fleet.alarm_names() == set()
    assert set(_query_alarms(fleet)) == QUERY_NAMES

    # Back to per-instance, with a run too short to put every alarm: the query alarms
    # stay until one run has put them all.
    back = _modes(fleet, "per-instance", None)
    [newest] = fleet.launch()
    _lifecycle(fleet, back).handle([fleet.event(newest, "running", later(3000))])
    short = _reconcile(fleet, back, budget_seconds=4 / FAST.rate)
    assert short.deferred > 0
    assert short.query_alarms_deleted == 0
    assert set(_query_alarms(fleet)) == QUERY_NAMES
    final = _reconcile(fleet, back)
    assert final.query_alarms_deleted == 2
    assert _query_alarms(fleet) == {}
    running = describe_managed_running(fleet.ec2, fleet.settings)
    assert fleet.alarmed_instances() == set(running)
    assert watch.unwatched() == []
    assert watch.checks == 2  # checked before both deletes: 10 alarms, then the 2 queries
    assert 0 in puts
    assert 0 in deletes


def test_the_reconciler_leaves_recent_launches_to_the_lifecycle(fleet: Fleet) -> None:
    settings = replace(fleet.settings, reconcile_grace_seconds=300)
    [old, recent, queued] = fleet.launch(3)
    # Registered running (the lifecycle has them) but their alarms are not made yet.
    for instance, seconds in ((old, 3000), (recent, 3500), (queued, 3250)):
        facts = fleet.clients.ec2.describe_instances(InstanceIds=[instance])
        from chalicelib.fleet.registry import facts_from

        fleet.registry.record(
            _change(instance, later(seconds)),
            facts_from(facts["Reservations"][0]["Instances"][0]),
            True,
        )
    calm = reconcile(
        settings=settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(3600),
        backlog=0,
    )
    # Runs begun 600 s and 350 s ago are past the 300 s grace; 100 s ago is not.
    assert calm.left_to_lifecycle == 1
    assert fleet.alarmed_instances() == {old, queued}
    fleet.alarms.delete(sorted(fleet.alarm_names()))
    busy = reconcile(
        settings=settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(3600),
        backlog=450,  # 450 queued messages: 300 s more for the lifecycle to drain them
    )
    assert busy.left_to_lifecycle == 2  # within 600 s now: only the oldest is made
    assert fleet.alarmed_instances() == {old}
    late = reconcile(
        settings=settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=later(4000),
        backlog=0,
    )
    assert late.left_to_lifecycle == 0
    assert fleet.alarmed_instances() == {old, recent, queued}


def _change(instance_id: str, at: datetime) -> Any:
    from chalicelib.fleet.events import STATE_RANK, StateChange

    return StateChange(at, STATE_RANK["running"], instance_id, "running", "test")


def _answer_contributors(fleet: Fleet, in_alarm: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Answer `DescribeAlarmContributors` (which moto lacks) with the given contributors
    in ALARM; returns the requests made, to check them."""
    requests: list[dict[str, Any]] = []
    by_name = {FLEET_ALARM_NAMES[c]: ids for c, ids in in_alarm.items()}

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    def answer(**_: Any) -> Any:
        contributors = [
            {
                "ContributorId": f"c-{i}",
                "ContributorAttributes": {"InstanceId": i},
                "StateReason": "Threshold Crossed",
                "StateTransitionedTimestamp": datetime(2026, 1, 27, 10, 50, tzinfo=UTC),
            }
            for i in by_name.get(requests[-1]["AlarmName"], [])
        ]
        # What botocore's Stubber answers with: an empty 200 and the parsed body.
        return AWSResponse("", 200, {}, None), {"AlarmContributors": contributors}

    events = fleet.cloudwatch.meta.events
    events.register("provide-client-params.cloudwatch.DescribeAlarmContributors", record)
    events.register("before-call.cloudwatch.DescribeAlarmContributors", answer)
    return requests


def test_the_reconciler_takes_health_from_the_contributors(
    session: boto3.Session, fleet: Fleet
) -> None:
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    [sick, healed, fine] = fleet.launch(3)
    lifecycle = _lifecycle(fleet, modes)
    lifecycle.handle([fleet.event(i, "running") for i in (sick, healed, fine)])
    fleet.registry.update(healed, {"check_status_state": "ALARM", "check_status_ms": 1})
    requests = _answer_contributors(fleet, {"system": [sick]})

    report = _reconcile(fleet, modes, now=later(3600))

    assert {r["AlarmName"] for r in requests} == QUERY_NAMES
    assert report.health_corrected == 2
    sick_row = fleet.registry.get(sick)
    assert sick_row is not None
    assert sick_row["check_system_state"] == "ALARM"
    healed_row = fleet.registry.get(healed)
    assert healed_row is not None
    assert healed_row["check_status_state"] == "OK"
    from chalicelib.fleet.health import is_unhealthy

    assert is_unhealthy(sick_row)
    assert not is_unhealthy(healed_row)
    fine_row = fleet.registry.get(fine)
    assert fine_row is not None
    assert "check_status_state" not in fine_row


def test_a_launch_left_to_the_lifecycle_is_not_adopted_behind_its_back(fleet: Fleet) -> None:
    # Found by the burst bench: the reconciler left a queued launch's alarms to the
    # lifecycle but adopted it into the registry stamped `now`, so the lifecycle took
    # the (older) running event for stale and nobody put the alarms until the next run.
    [instance] = fleet.launch()
    launched = datetime.now(UTC)  # moto stamps LaunchTime with the real time
    report = reconcile(
        settings=fleet.settings,
        ec2=fleet.ec2,
        registry=fleet.registry,
        alarms=fleet.alarms,
        now=launched + timedelta(seconds=30),
        backlog=1,
    )
    assert report.left_to_lifecycle == 1
    assert report.adopted == 0
    assert fleet.registry.get(instance) is None
    outcome = fleet.lifecycle.handle([fleet.event(instance, "running", launched)])
    assert outcome.stale == 0
    assert fleet.alarmed_instances() == {instance}


def _answer_query(fleet: Fleet, labels: list[str]) -> list[dict[str, Any]]:
    """Answer `GetMetricData` on a Metrics Insights expression (moto cannot evaluate
    one) with a series per label in `labels` at the time of the call; returns the
    requests made, to check them."""
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    def answer(**_: Any) -> Any:
        results = [
            {
                "Id": "fleet",
                "Label": label,
                "Timestamps": [],
                "Values": [],
                "StatusCode": "Complete",
            }
            for label in labels
        ]
        return AWSResponse("", 200, {}, None), {"MetricDataResults": results, "Messages": []}

    events = fleet.cloudwatch.meta.events
    events.register("provide-client-params.cloudwatch.GetMetricData", record)
    events.register("before-call.cloudwatch.GetMetricData", answer)
    return requests


def test_fleet_query_does_not_start_while_its_query_misses_running_instances(
    session: boto3.Session, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    # A tag filter that matches less than it should (e.g. `!=` on a tag an instance
    # lacks) must not leave instances unwatched: the query is run and checked first.
    seen, missed = fleet.launch(2)
    telemetry = _telemetry(session, "Running", "Running")
    modes = _modes(fleet, "fleet-query", telemetry)
    modes.ec2 = fleet.ec2
    modes.now = lambda: datetime.now(UTC) + timedelta(minutes=30)
    labels = [seen]
    requests = _answer_query(fleet, labels)

    with caplog.at_level(logging.ERROR):
        refused = modes.prepare()

    assert refused["alarm_mode"] == "per-instance"
    assert refused["unseen_instances"] == 1
    assert f"e.g. {missed}" in caplog.text
    assert _query_alarms(fleet) == {}
    [request] = requests
    [query] = request["MetricDataQueries"]
    assert query["Expression"] == query_expression(
        next(k for k in ALARM_KINDS if k.suffix == "status"), modes.fleet_alarms.settings
    )
    assert request["EndTime"] - request["StartTime"] == timedelta(minutes=15)

    labels.append(missed)  # the tags fixed: the query sees both
    assert modes.prepare()["alarm_mode"] == "fleet-query"
    assert set(_query_alarms(fleet)) == QUERY_NAMES
    telemetry.stubber.assert_no_pending_responses()


def _put_status_checks(fleet: Fleet, failing: set[str], healthy: set[str], at: datetime) -> None:
    """`StatusCheckFailed_Instance` as EC2 publishes it, one-minute maxima for the three
    minutes before `at` (1 for a failing instance, 0 for a healthy one)."""
    data = [
        {
            "MetricName": "StatusCheckFailed_Instance",
            "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            "Timestamp": at - timedelta(minutes=minutes),
            "Value": 1.0 if instance_id in failing else 0.0,
        }
        for instance_id in sorted(failing | healthy)
        for minutes in (3, 2, 1)
    ]
    for start in range(0, len(data), 900):
        fleet.cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data[start : start + 900])


def _answer_insights_query(fleet: Fleet, values: dict[str, float], at: datetime) -> list[Any]:
    """Answer `GetMetricData` on a Metrics Insights expression, which moto cannot evaluate,
    as the Metrics Insights quotas page says CloudWatch does: one series per instance,
    sorted by `ORDER BY MAX() DESC`, at most the query's `LIMIT` returned. The series
    are the same one-minute maxima put into moto. `MetricStat` queries go on to moto
    itself. Returns the expression requests made."""
    requests: list[Any] = []
    last: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        last[:] = [dict(params)]

    def answer(**_: Any) -> Any:
        [query, *_rest] = last[0]["MetricDataQueries"]
        if "Expression" not in query:
            return None  # moto answers it
        requests.append(last[0])
        limit = int(query["Expression"].rsplit("LIMIT ", 1)[1])
        ordered = sorted(values, key=lambda i: (-values[i], i))[:limit]
        stamps = [at - timedelta(minutes=m) for m in (1, 2, 3)]
        results = [
            {
                "Id": query["Id"],
                "Label": instance_id,
                "Timestamps": stamps,
                "Values": [values[instance_id]] * 3,
                "StatusCode": "Complete",
            }
            for instance_id in ordered
        ]
        return AWSResponse("", 200, {}, None), {"MetricDataResults": results, "Messages": []}

    events = fleet.cloudwatch.meta.events
    events.register("provide-client-params.cloudwatch.GetMetricData", record)
    events.register("before-call.cloudwatch.GetMetricData", answer)
    return requests


@pytest.mark.parametrize("series_limit", [500, 120])
def test_fleet_health_is_exact_with_150_instances_failing_at_once(
    session: boto3.Session,
    fleet: Fleet,
    infra: Any,
    series_limit: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # CloudWatch keeps at most 100 contributors in ALARM: the other 50 failing
    # instances never get a contributor event, and DescribeAlarmContributors lists 100.
    # With a query answer cut at 120 series, 30 failing instances are read one by one
    # (moto evaluates those `MetricStat` queries from the data put here).
    import json

    from chalicelib.alerts.publish import AlertPublisher
    from chalicelib.fleet.health import FleetHealth
    from chalicelib.fleet.snapshots import SNAPSHOT
    from chalicelib.fleet.stats import Stats

    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running", "Running"))
    modes.fleet_alarms.series_limit = series_limit
    modes.prepare()
    instances = fleet.launch(200)
    _lifecycle(fleet, modes).handle([fleet.event(i, "running") for i in instances])
    failing, healthy = set(instances[:150]), set(instances[150:])
    now = later(3600)
    _put_status_checks(fleet, failing, healthy, now)
    values = {i: 1.0 if i in failing else 0.0 for i in instances}
    queries = _answer_insights_query(fleet, values, now)
    first_hundred = sorted(failing)[:100]
    _answer_contributors(fleet, {"status": first_hundred})
    fleet.cloudwatch.set_alarm_state(
        AlarmName="spawn-fleet-status-check",
        StateValue="ALARM",
        StateReason="100+ time series evaluated to ALARM",
    )

    report = _reconcile(fleet, modes, now=now)

    assert report.mode == "fleet-query"
    assert report.health_corrected == 150
    assert len(queries) == 1  # only the capped check reads the data
    stats = Stats(fleet.clients.dynamodb, fleet.settings.stats_table)
    alerts = AlertPublisher(
        fleet.clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]
    )
    capsys.readouterr()
    FleetHealth(fleet.registry, stats, alerts, threshold=5.0, clock=lambda: now).tick()
    published = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    fleet_document = stats.get_document(SNAPSHOT)  # what GET /fleet answers
    assert fleet_document is not None
    assert fleet_document["unhealthy"]["count"] == 150
    assert set(fleet_document["unhealthy"]["instance_ids"]) == failing
    # The figures spawn-fleet-unhealthy watches are the same count.
    [figures] = published
    assert figures["UnhealthyInstances"] == [150.0]
    assert figures["UnhealthyPercent"] == [fleet_document["unhealthy"]["percent"]] == [75.0]


def test_contributors_under_the_cap_are_taken_as_listed(
    session: boto3.Session, fleet: Fleet
) -> None:
    # Below the cap the data is not read at all: the contributors are the answer.
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    instances = fleet.launch(3)
    _lifecycle(fleet, modes).handle([fleet.event(i, "running") for i in instances])
    _answer_contributors(fleet, {"status": instances[:1]})
    calls = count_calls(fleet.cloudwatch)
    report = _reconcile(fleet, modes)
    assert report.health_corrected == 1
    assert "GetMetricData" not in calls


def test_instances_the_query_does_not_select_keep_their_own_alarms(
    session: boto3.Session, fleet: Fleet
) -> None:
    # Tagged only `spawn=true` (spawn's how-to guides), or `spawn:managed=True`: managed,
    # but not taken by `WHERE tag."spawn:managed" = 'true'`.
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running", "Running", "Running"))
    modes.prepare()
    array = {"spawn:job-array-id": "render-20260127-a1b2c3"}
    [selected] = fleet.launch(1, {"spawn:managed": "true", **array})
    [guide] = fleet.launch(1, {"spawn": "true", **array})
    [capital] = fleet.launch(1, {"spawn:managed": "True", **array})
    [opted_out] = fleet.launch(1, {"spawn": "true", "spawn:monitoring": "off", **array})
    lifecycle = _lifecycle(fleet, modes)
    calls = count_calls(fleet.cloudwatch)
    lifecycle.handle([fleet.event(i, "running") for i in (selected, guide, capital, opted_out)])
    # The lifecycle puts alarms at once for the two the query leaves out, and no others.
    assert fleet.alarmed_instances() == {guide, capital}
    assert calls.get("PutMetricAlarm") == 4
    assert "DeleteAlarms" not in calls

    # A per-instance alarm left for a selected instance goes; the others stay.
    fleet.alarms.put([Watched(selected, None)])
    _answer_contributors(fleet, {})
    report = _reconcile(fleet, modes)
    assert report.mode == "fleet-query"
    assert fleet.alarmed_instances() == {guide, capital}
    assert set(_query_alarms(fleet)) == QUERY_NAMES

    # Terminated: the reconciler deletes its alarms (the lifecycle leaves deletes to it).
    lifecycle.handle([fleet.event(guide, "terminated", later(60))])
    fleet.ec2.terminate_instances(InstanceIds=[guide])
    _reconcile(fleet, modes, now=later(7200))
    assert fleet.alarmed_instances() == {capital}


def test_the_coverage_guard_looks_only_at_what_the_query_selects(
    session: boto3.Session, fleet: Fleet
) -> None:
    [selected] = fleet.launch(1, {"spawn:managed": "true"})
    fleet.launch(1, {"spawn": "true"})  # never in the query's answer: has its own alarms
    modes = _modes(fleet, "fleet-query", _telemetry(session, "Running"))
    modes.ec2 = fleet.ec2
    modes.now = lambda: datetime.now(UTC) + timedelta(minutes=30)
    _answer_query(fleet, [selected])
    assert modes.prepare()["alarm_mode"] == "fleet-query"
