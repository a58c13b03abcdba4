"""`ALARM_MODE=fleet-query` (SPEC §5): two Metrics Insights alarms watch the whole fleet.

`spawn-fleet-status-check` and `spawn-fleet-system-check` each run one Metrics
Insights query over `AWS/EC2` `StatusCheckFailed_Instance` / `_System`, grouped by
`InstanceId` and limited by tag filters to managed, not opted-out instances. Every
time series the query returns is a *contributor* with its own ALARM/OK state, SNS
notifications, EC2 actions and EventBridge events, so one alarm per check watches every
managed instance, present and future, with no call per instance and nothing to leak.

The query syntax (CloudWatch docs, "Metrics Insights query components and syntax" and
"Alarms on Metrics Insights queries"): resource tags are labels named `tag.<key>`
(`WHERE tag.Environment = 'Prod'`), usable once "resource tags on telemetry" is on;
label keys, like namespaces, "that include / or any other character that is not a
letter, number, or underscore must be surrounded by double quotes", so a key with `:`
is written `tag."spawn:managed"` (every key is quoted here, which is always allowed);
values are single-quoted strings, compared exactly (spawn writes `true` and `off` in
lower case; the per-instance mode also accepts other cases and spaces).
`SCHEMA("AWS/EC2", InstanceId)` keeps only the per-instance series (not the
Auto Scaling group or fleet-wide aggregates), `GROUP BY InstanceId` makes one
contributor per instance, and `ORDER BY MAX() DESC` puts failing instances first, since
a query returns at most `QUERY_SERIES_LIMIT` series.

`plan_alarms` compares the described alarms with the wanted requests (pure); the
`FleetQueryAlarms` store writes through the same account-wide budget as every other
alarm writer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.alarms.per_instance import ALARM_KINDS, AlarmKind, partition_of
from chalicelib.core.pacing import Pacer, RateLimiter
from chalicelib.core.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

logger = logging.getLogger(__name__)

FLEET_ALARM_NAMES = {"status": "spawn-fleet-status-check", "system": "spawn-fleet-system-check"}
# Metrics Insights returns at most this many series per query; failing ones sort first.
QUERY_SERIES_LIMIT = 500
# The fields of a described alarm that `PutMetricAlarm` sets here, compared one by one.
COMPARED = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "Metrics",
)


def query_name(kind: AlarmKind) -> str:
    return FLEET_ALARM_NAMES[kind.suffix]


def check_of(alarm_name: str) -> str | None:
    """`status` or `system` for a fleet query alarm's name, else None."""
    for check, name in FLEET_ALARM_NAMES.items():
        if name == alarm_name:
            return check
    return None


def _quoted(key: str) -> str:
    # Settings allow only [A-Za-z0-9_.:/-] in tag keys, so no quote can appear inside.
    return f'tag."{key}"'


def query_expression(kind: AlarmKind, settings: Settings) -> str:
    """The Metrics Insights query of one check (see the module docstring for the syntax).

    For the status check with the default tags::

        SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId)
        WHERE (tag."spawn:managed" = 'true' OR tag."spawn" = 'true')
        AND tag."spawn:monitoring" != 'off'
        GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500
    """
    managed = " OR ".join(f"{_quoted(key)} = 'true'" for key in settings.managed_tag_keys)
    # Not SQL injection: every part is a constant or a validated setting (tag keys).
    where = f"WHERE ({managed}) AND {_quoted(settings.opt_out_tag)} != 'off'"
    select = f'SELECT MAX({kind.metric}) FROM SCHEMA("AWS/EC2", InstanceId)'  # noqa: S608
    group = f"GROUP BY InstanceId ORDER BY MAX() DESC LIMIT {QUERY_SERIES_LIMIT}"
    return " ".join((select, where, group))


def query_alarm_request(
    kind: AlarmKind, settings: Settings, *, topic_arn: str, region: str, recover: bool
) -> dict[str, Any]:
    """The exact `PutMetricAlarm` request of one fleet query alarm.

    Same evaluation as the per-instance alarms (Maximum over 60 s, 2 of 2 periods at
    or above 1); actions at contributor level: the alerts topic, and EC2's recover
    action on the system check when `ENABLE_RECOVER_ACTION` is on.
    """
    actions = [topic_arn]
    if recover and kind.recoverable:
        actions.append(f"arn:{partition_of(region)}:automate:{region}:ec2:recover")
    return {
        "AlarmName": query_name(kind),
        "AlarmDescription": f"{kind.description} (each managed instance is a contributor)",
        "ActionsEnabled": True,
        "AlarmActions": actions,
        "OKActions": [topic_arn],
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        # An instance that stops reporting is gone or stopped: the lifecycle knows.
        "TreatMissingData": "notBreaching",
        "Metrics": [
            {
                "Id": "checks",
                "Expression": query_expression(kind, settings),
                "Period": 60,
                "ReturnData": True,
            }
        ],
        "Tags": [{"Key": "spawn:alarm-mode", "Value": "fleet-query"}],
    }


def _normal(field_name: str, value: Any) -> Any:
    if field_name in ("AlarmActions", "OKActions"):
        return sorted(value or [])
    if field_name == "Threshold":
        return float(value)
    if field_name == "Metrics":
        return [
            {k: m.get(k) for k in ("Id", "Expression", "Period", "ReturnData")} for m in value or []
        ]
    return value


def differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """The fields in which a described alarm differs from the wanted request."""
    return [
        name
        for name in COMPARED
        if _normal(name, existing.get(name)) != _normal(name, request.get(name))
    ]


@dataclass(frozen=True)
class QueryAlarmPlan:
    put: tuple[dict[str, Any], ...] = ()
    ok: tuple[str, ...] = ()


def plan_alarms(
    wanted: Iterable[Mapping[str, Any]], existing: Mapping[str, Mapping[str, Any]]
) -> QueryAlarmPlan:
    """Which wanted alarms to (re)write: missing ones, and ones that differ."""
    put: list[dict[str, Any]] = []
    ok: list[str] = []
    for request in wanted:
        found = existing.get(request["AlarmName"])
        if found is None or differences(found, request):
            put.append(dict(request))
        else:
            ok.append(request["AlarmName"])
    return QueryAlarmPlan(tuple(put), tuple(ok))


@dataclass
class FleetQueryAlarms:
    """CloudWatch I/O for the two fleet query alarms.

    Args:
        cloudwatch: a CloudWatch client.
        settings: tag keys for the query.
        topic_arn: the alerts topic.
        region: for the recover action's ARN.
        recover: add EC2's recover action to the system check.
        put_limiter / delete_limiter: the account-wide alarm budget.
        contributors_api: whether the endpoint has `DescribeAlarmContributors` (the
            local stack's moto does not: health then comes from events alone).
    """

    cloudwatch: CloudWatchClient
    settings: Settings
    topic_arn: str
    region: str
    recover: bool = False
    put_limiter: Pacer = field(default_factory=lambda: RateLimiter(3.0))
    delete_limiter: Pacer = field(default_factory=lambda: RateLimiter(3.0))
    contributors_api: bool = True

    @property
    def names(self) -> list[str]:
        return [query_name(kind) for kind in ALARM_KINDS]

    def wanted(self) -> list[dict[str, Any]]:
        return [
            query_alarm_request(
                kind,
                self.settings,
                topic_arn=self.topic_arn,
                region=self.region,
                recover=self.recover,
            )
            for kind in ALARM_KINDS
        ]

    def describe(self) -> dict[str, dict[str, Any]]:
        """The fleet query alarms that exist, by name (one `DescribeAlarms`)."""
        response = self.cloudwatch.describe_alarms(
            AlarmNames=self.names, AlarmTypes=["MetricAlarm"], MaxRecords=len(self.names)
        )
        return {a["AlarmName"]: dict(a) for a in response.get("MetricAlarms", [])}

    def all_exist(self) -> bool:
        return set(self.describe()) == set(self.names)

    def ensure(self) -> list[str]:
        """Create or correct both alarms; returns the names written."""
        alarm_plan = plan_alarms(self.wanted(), self.describe())
        self.put_limiter.reserve(len(alarm_plan.put))
        for request in alarm_plan.put:
            self.put_limiter.acquire()
            self.cloudwatch.put_metric_alarm(**request)
            logger.info("fleet query alarm written", extra={"alarm": request["AlarmName"]})
        return [request["AlarmName"] for request in alarm_plan.put]

    def delete(self) -> list[str]:
        """Delete both alarms if they exist (one paced call); returns the names deleted."""
        present = sorted(self.describe())
        if present:
            self.delete_limiter.reserve(1)
            self.delete_limiter.acquire()
            self.cloudwatch.delete_alarms(AlarmNames=present)
        return present

    def instances_seen(self, start: datetime, end: datetime) -> set[str]:
        """The instances the status check's query returns series for between `start` and
        `end`: `GetMetricData` on the same expression (the label of each series is its
        `InstanceId`), page by page."""
        [status] = [kind for kind in ALARM_KINDS if kind.suffix == "status"]
        query: MetricDataQueryTypeDef = {
            "Id": "fleet",
            "Expression": query_expression(status, self.settings),
            "Period": 300,
        }
        return {
            result["Label"]
            for page in self.cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=[query], StartTime=start, EndTime=end
            )
            for result in page["MetricDataResults"]
            if result.get("Label")
        }

    def contributors_in_alarm(self) -> dict[str, dict[str, int]] | None:
        """For each check (`status`, `system`), the instances whose contributor is in
        ALARM now, with the epoch ms of that transition (`DescribeAlarmContributors`,
        page by page; it lists contributors in ALARM only). None where the endpoint
        lacks the API."""
        if not self.contributors_api:
            return None
        found: dict[str, dict[str, int]] = {}
        for kind in ALARM_KINDS:
            in_alarm: dict[str, int] = {}
            token: str | None = None
            while True:
                request: dict[str, Any] = {"AlarmName": query_name(kind)}
                if token:
                    request["NextToken"] = token
                page = self.cloudwatch.describe_alarm_contributors(**request)
                for contributor in page.get("AlarmContributors", []):
                    instance_id = contributor.get("ContributorAttributes", {}).get("InstanceId")
                    if instance_id:
                        since = contributor.get("StateTransitionedTimestamp")
                        in_alarm[instance_id] = int(since.timestamp() * 1000) if since else 0
                token = page.get("NextToken")
                if not token:
                    break
            found[kind.suffix] = in_alarm
        return found
