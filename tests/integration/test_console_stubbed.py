"""What moto cannot hold, tested as the exact requests with botocore's Stubber.

moto 5.2 implements neither PutCompositeAlarm, PutAnomalyDetector,
DescribeAnomalyDetectors and DeleteAnomalyDetector, nor PutQueryDefinition,
DescribeQueryDefinitions and DeleteQueryDefinition. Here the Stubber checks each
request against the service model and expects exactly the calls listed: an
unexpected call fails the test. Responses are shaped as the API reference gives them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.console import dashboards
from chalicelib.console.alarms import CRITICAL, Topics
from chalicelib.console.description import Console, Deployment, describe
from chalicelib.console.plan import Existing, ExistingAlarm, Plan, plan
from chalicelib.console.setup import ConsoleSetup, SetupIncomplete
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings

NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
TOPICS = Topics(
    "arn:aws:sns:us-east-1:123456789012:spawn-alerts",
    "arn:aws:sns:us-east-1:123456789012:spawn-critical",
    None,
)


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any, Stubber, Stubber]]:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    logs = boto3.client("logs", region_name="us-east-1")
    with Stubber(cloudwatch) as cw, Stubber(logs) as lg:
        yield cloudwatch, logs, cw, lg
        cw.assert_no_pending_responses()
        lg.assert_no_pending_responses()


def make(cloudwatch: Any, logs: Any) -> tuple[ConsoleSetup, Console]:
    settings = Settings()
    deployment = Deployment("us-east-1", "123456789012", TOPICS)
    setup = ConsoleSetup(
        settings,
        deployment,
        {"us-east-1": cloudwatch},
        logs,
        dynamodb=None,
        alarm_limiter=RateLimiter(10_000, burst=10_000),
    )
    return setup, describe(settings, deployment, [], NOW)


def everything_but_what_moto_lacks(console: Console) -> Existing:
    """Alarms, dashboards and logs as described; no detector, composite or query."""
    existing = Existing()
    existing.dashboards = dict(console.dashboards)
    existing.alarms["us-east-1"] = {
        spec.name: ExistingAlarm(spec.request) for spec in console.alarms if not spec.composite
    }
    existing.detectors["us-east-1"] = []
    existing.log_groups = {g.name: g.retention_days for g in console.log_groups}
    for spec in console.metric_filters:
        existing.metric_filters.setdefault(spec.group, {})[spec.name] = {
            "filterPattern": spec.pattern,
            "metricTransformations": [dict(spec.transformation)],
        }
    existing.queries = []
    return existing


def test_detectors_composite_and_queries_are_the_exact_requests(clients: Any) -> None:
    cloudwatch, logs, cw, lg = clients
    setup, console = make(cloudwatch, logs)
    steps = plan(console, everything_but_what_moto_lacks(console), "us-east-1", dashboards.is_owned)
    assert [c.operation for c in steps.calls] == [
        "PutQueryDefinition",
        "PutQueryDefinition",
        "PutQueryDefinition",
        "PutAnomalyDetector",
        "PutAnomalyDetector",
        "PutCompositeAlarm",
    ]
    for query in console.saved_queries:
        lg.add_response(
            "put_query_definition",
            {"queryDefinitionId": f"id-{query.name}"},
            {"name": query.name, "queryString": query.query, "logGroupNames": list(query.groups)},
        )
    for detector in console.detectors:
        cw.add_response(
            "put_anomaly_detector", {}, {"SingleMetricAnomalyDetector": detector.metric}
        )
    [composite] = [a for a in console.alarms if a.composite]
    cw.add_response(
        "put_composite_alarm",
        {},
        {
            "AlarmName": CRITICAL,
            "AlarmDescription": composite.request["AlarmDescription"],
            "AlarmRule": 'ALARM("spawn-fleet-error-rate") OR ALARM("spawn-low-throughput") '
            'OR ALARM("spawn-cost-anomaly")',
            "ActionsEnabled": True,
            "AlarmActions": [TOPICS.critical],
            "OKActions": [TOPICS.critical],
            "InsufficientDataActions": [],
        },
    )
    report = setup.apply(steps)
    assert report.writes == {
        "PutQueryDefinition": 3,
        "PutAnomalyDetector": 2,
        "PutCompositeAlarm": 1,
    }


def test_the_composite_waits_for_its_children(clients: Any) -> None:
    cloudwatch, logs, cw, _ = clients
    setup, console = make(cloudwatch, logs)
    existing = everything_but_what_moto_lacks(console)
    del existing.alarms["us-east-1"]["spawn-low-throughput"]
    steps = plan(console, existing, "us-east-1", dashboards.is_owned)
    alarm_calls = Plan(tuple(c for c in steps.calls if "Alarm" in c.operation))
    assert [c.operation for c in alarm_calls.calls] == ["PutMetricAlarm", "PutCompositeAlarm"]
    # The child cannot be created: the composite that names it is not attempted.
    cw.add_client_error("put_metric_alarm", "LimitExceeded", http_status_code=400)
    with pytest.raises(SetupIncomplete, match="spawn-critical-issues: children"):
        setup.apply(alarm_calls)


def test_reading_detectors_and_queries_follows_every_page(clients: Any) -> None:
    cloudwatch, logs, cw, lg = clients
    setup, console = make(cloudwatch, logs)
    cpu, cost = (d.metric for d in console.detectors)
    cw.add_response(
        "describe_anomaly_detectors",
        {"AnomalyDetectors": [{"SingleMetricAnomalyDetector": cpu}], "NextToken": "p2"},
        {"MaxResults": 100},
    )
    cw.add_response(
        "describe_anomaly_detectors",
        {"AnomalyDetectors": [{"SingleMetricAnomalyDetector": cost}]},
        {"MaxResults": 100, "NextToken": "p2"},
    )
    queries = [
        {
            "queryDefinitionId": f"id-{n}",
            "name": q.name,
            "queryString": q.query,
            "logGroupNames": list(q.groups),
        }
        for n, q in enumerate(console.saved_queries)
    ]
    lg.add_response(
        "describe_query_definitions",
        {"queryDefinitions": queries[:2], "nextToken": "next"},
        {"queryDefinitionNamePrefix": "spawn/", "maxResults": 1000},
    )
    lg.add_response(
        "describe_query_definitions",
        {"queryDefinitions": queries[2:]},
        {"queryDefinitionNamePrefix": "spawn/", "maxResults": 1000, "nextToken": "next"},
    )
    existing = everything_but_what_moto_lacks(console)
    existing.detectors["us-east-1"] = list(setup._detectors("us-east-1"))
    existing.queries = setup._queries()
    existing.alarms["us-east-1"][CRITICAL] = ExistingAlarm(
        next(a.request for a in console.alarms if a.composite), composite=True
    )
    # Everything already there: a second run has nothing to write.
    assert plan(console, existing, "us-east-1", dashboards.is_owned).calls == ()


def test_an_owned_detector_no_longer_described_is_deleted_exactly(clients: Any) -> None:
    cloudwatch, logs, cw, _ = clients
    setup, console = make(cloudwatch, logs)
    existing = everything_but_what_moto_lacks(console)
    existing.alarms["us-east-1"][CRITICAL] = ExistingAlarm(
        next(a.request for a in console.alarms if a.composite), composite=True
    )
    retired = {
        "Namespace": "Spawn/Fleet",
        "MetricName": "ActiveInstances",
        "Dimensions": [],
        "Stat": "Maximum",
    }
    existing.detectors["us-east-1"] = [
        {"SingleMetricAnomalyDetector": d.metric} for d in console.detectors
    ] + [{"SingleMetricAnomalyDetector": retired}]
    existing.queries = None  # not read: every saved query is put again
    steps = plan(console, existing, "us-east-1", dashboards.is_owned)
    deletes = Plan(tuple(c for c in steps.calls if c.operation == "DeleteAnomalyDetector"))
    cw.add_response("delete_anomaly_detector", {}, {"SingleMetricAnomalyDetector": retired})
    assert setup.apply(deletes).writes == {"DeleteAnomalyDetector": 1}
