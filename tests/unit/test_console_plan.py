"""Described vs existing → exact calls: nothing when equal, owned things only, safe order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chalicelib.console import dashboards
from chalicelib.console.alarms import MARKER, Topics
from chalicelib.console.arrays import ArrayState
from chalicelib.console.description import Console, Deployment, describe
from chalicelib.console.plan import Existing, ExistingAlarm, Plan, plan, same
from chalicelib.core.settings import Settings

NOW = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
REGION = "us-east-1"


def console(**settings: Any) -> Console:
    topics = Topics("arn:alerts", "arn:critical", None)
    deployment = Deployment(REGION, "123456789012", topics)
    return describe(Settings(**settings), deployment, [ArrayState("a-1"), ArrayState("b-2")], NOW)


def as_aws_has_it(described: Console) -> Existing:
    """What AWS would describe after applying `described` (with the extra keys and the
    omissions AWS's Describe* answers have)."""
    existing = Existing()
    existing.dashboards = dict(described.dashboards)
    for spec in described.alarms:
        shown = {
            **spec.request,
            "AlarmArn": f"arn:aws:cloudwatch:{spec.region}:1:alarm:{spec.name}",
            "StateValue": "OK",
            "Threshold": float(spec.request.get("Threshold", 0)),
        }
        if "Dimensions" not in shown and not spec.composite:
            shown["Dimensions"] = []
        shown.pop("InsufficientDataActions")  # AWS leaves out empty lists sometimes
        existing.alarms.setdefault(spec.region, {})[spec.name] = ExistingAlarm(
            shown, spec.composite
        )
    for spec in described.detectors:
        existing.detectors.setdefault(spec.region, []).append(
            {"SingleMetricAnomalyDetector": spec.metric, "StateValue": "TRAINED"}
        )
    existing.log_groups = {g.name: g.retention_days for g in described.log_groups}
    for spec in described.metric_filters:
        existing.metric_filters.setdefault(spec.group, {})[spec.name] = {
            "filterName": spec.name,
            "filterPattern": spec.pattern,
            "metricTransformations": [dict(spec.transformation)],
            "logGroupName": spec.group,
        }
    existing.queries = [
        {
            "queryDefinitionId": f"id-{n}",
            "name": q.name,
            "queryString": q.query,
            "logGroupNames": list(q.groups),
        }
        for n, q in enumerate(described.saved_queries)
    ]
    return existing


def planned(described: Console, existing: Existing) -> Plan:
    return plan(described, existing, REGION, dashboards.is_owned)


def operations(steps: Plan) -> list[str]:
    return [call.operation for call in steps.calls]


def test_nothing_to_do_when_everything_is_as_described() -> None:
    described = console()
    assert planned(described, as_aws_has_it(described)).calls == ()


def test_from_nothing_everything_is_created_children_before_the_composite() -> None:
    steps = planned(console(), Existing())
    ops = operations(steps)
    assert ops.count("PutMetricAlarm") == 6
    assert ops.count("PutDashboard") == 3
    assert ops.count("CreateLogGroup") == ops.count("PutRetentionPolicy") == 3
    assert ops.count("PutMetricFilter") == 2
    assert ops.count("PutQueryDefinition") == 3
    assert ops.count("PutAnomalyDetector") == 2
    composite = ops.index("PutCompositeAlarm")
    assert composite > max(i for i, op in enumerate(ops) if op == "PutMetricAlarm")
    assert max(i for i, op in enumerate(ops) if op == "PutAnomalyDetector") < ops.index(
        "PutMetricAlarm"
    )
    assert not [op for op in ops if op.startswith("Delete")]


def test_only_what_drifted_is_written() -> None:
    described = console()
    existing = as_aws_has_it(described)
    error_rate = existing.alarms[REGION]["spawn-fleet-error-rate"]
    existing.alarms[REGION]["spawn-fleet-error-rate"] = ExistingAlarm(
        {**error_rate.described, "Threshold": 50.0}
    )
    existing.dashboards["spawn-fleet"] = json.dumps({"widgets": []})
    existing.log_groups["/aws/spawn/errors"] = 1
    steps = planned(described, existing)
    assert [(c.operation, c.subject) for c in steps.calls] == [
        ("PutRetentionPolicy", "/aws/spawn/errors"),
        ("PutMetricAlarm", "spawn-fleet-error-rate"),
        ("PutDashboard", "spawn-fleet"),
    ]
    assert steps.calls[1].params == next(
        a.request for a in described.alarms if a.name == "spawn-fleet-error-rate"
    )


def test_a_changed_setting_updates_its_alarm_in_place() -> None:
    before = as_aws_has_it(console(unhealthy_percent_threshold=5))
    steps = planned(console(unhealthy_percent_threshold=2), before)
    alarm_calls = [c for c in steps.calls if "Alarm" in c.operation]
    assert [(c.operation, c.params.get("Threshold")) for c in alarm_calls] == [
        ("PutMetricAlarm", 2.0)
    ]


def marked(name: str, **extra: Any) -> dict[str, Any]:
    return {"AlarmName": name, "AlarmDescription": f"old {MARKER}", **extra}


def test_what_it_owns_but_no_longer_describes_goes_and_nothing_else() -> None:
    described = console()
    existing = as_aws_has_it(described)
    alarms = existing.alarms[REGION]
    alarms["spawn-instance-i-0123456789abcdef0-status"] = ExistingAlarm({"AlarmName": "x"})
    alarms["spawn-old-rate"] = ExistingAlarm(marked("spawn-old-rate"))
    alarms["spawn-old-kept"] = ExistingAlarm(marked("spawn-old-kept"))
    alarms["spawn-old-composite"] = ExistingAlarm(
        marked("spawn-old-composite", AlarmRule='ALARM("spawn-old-rate")'), composite=True
    )
    # Someone else's composite names one of ours: that one must stay.
    alarms["spawn-team-composite"] = ExistingAlarm(
        {"AlarmName": "spawn-team-composite", "AlarmRule": 'ALARM("spawn-old-kept")'},
        composite=True,
    )
    existing.dashboards |= {"spawn-costs": "{}", "spawn-array-gone-1": "{}"}
    existing.metric_filters["/aws/spawn/workers"] |= {
        "task-duration": {"filterName": "task-duration"},  # the guide's, by hand
        "spawn-renamed": {"filterName": "spawn-renamed"},
    }
    assert existing.queries is not None
    existing.queries += [
        {"queryDefinitionId": "mine", "name": "mine/errors"},
        {"queryDefinitionId": "old", "name": "spawn/Old query"},
        {**existing.queries[0], "queryDefinitionId": "dup"},
    ]
    existing.detectors[REGION] = [
        *(existing.detectors[REGION] or []),
        {
            "SingleMetricAnomalyDetector": {
                "Namespace": "Spawn/Old",
                "MetricName": "X",
                "Stat": "Sum",
            }
        },
        {
            "SingleMetricAnomalyDetector": {
                "Namespace": "AWS/EC2",
                "MetricName": "NetworkIn",
                "Stat": "Sum",
            }
        },
    ]
    steps = planned(described, existing)
    assert [(c.operation, dict(c.params)) for c in steps.calls] == [
        (
            "DeleteMetricFilter",
            {"logGroupName": "/aws/spawn/workers", "filterName": "spawn-renamed"},
        ),
        ("DeleteQueryDefinition", {"queryDefinitionId": "dup"}),
        ("DeleteQueryDefinition", {"queryDefinitionId": "old"}),
        ("DeleteAlarms", {"AlarmNames": ["spawn-old-composite"]}),
        ("DeleteAlarms", {"AlarmNames": ["spawn-old-rate"]}),
        (
            "DeleteAnomalyDetector",
            {
                "SingleMetricAnomalyDetector": {
                    "Namespace": "Spawn/Old",
                    "MetricName": "X",
                    "Stat": "Sum",
                }
            },
        ),
        ("DeleteDashboards", {"DashboardNames": ["spawn-array-gone-1"]}),
    ]
    assert steps.held == ("spawn-old-kept",)


def test_deletes_take_at_most_100_names_a_call() -> None:
    described = console()
    existing = as_aws_has_it(described)
    for n in range(150):
        existing.alarms[REGION][f"spawn-gone-{n:03}"] = ExistingAlarm(marked(f"spawn-gone-{n:03}"))
        existing.dashboards[f"spawn-array-gone-{n:03}"] = "{}"
    steps = planned(described, existing)
    sizes = [
        len(c.params.get("AlarmNames") or c.params.get("DashboardNames") or []) for c in steps.calls
    ]
    assert sizes == [100, 50, 100, 50]


def test_a_body_not_read_is_not_compared() -> None:
    described = console()
    existing = as_aws_has_it(described)
    existing.dashboards = dict.fromkeys(existing.dashboards)
    assert planned(described, existing).calls == ()


def test_same_compares_as_aws_describes() -> None:
    assert same({"Threshold": 5}, {"Threshold": 5.0, "StateValue": "OK"})
    assert same({"Dimensions": []}, {})
    assert same(
        {"Dimensions": [{"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}]},
        {"Dimensions": [{"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}]},
    )
    assert same({"AlarmActions": ["b", "a"]}, {"AlarmActions": ["a", "b"]})
    assert not same({"AlarmActions": ["a"]}, {"AlarmActions": ["a", "b"]})
    assert not same({"ActionsEnabled": True}, {"ActionsEnabled": False})
    assert not same({"ActionsEnabled": True}, {"ActionsEnabled": 1})
    assert not same({"Metrics": [{"Id": "m", "ReturnData": True}]}, {"Metrics": [{"Id": "m"}]})
    assert same({"Tags": [{"Key": "k", "Value": "v"}]}, {})  # PutMetricAlarm ignores them
