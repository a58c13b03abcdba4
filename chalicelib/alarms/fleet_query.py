"""`ALARM_MODE=fleet-query`: two Metrics Insights alarms watch the whole fleet.

Over 400 lines because the query, its alarms' plan and store, and the count past the
contributor cap all share the one query text and its limits.

Each alarm's query groups `StatusCheckFailed_*` by `InstanceId` over instances tagged
`spawn:managed=true` (`query_selects`), so every instance is a contributor and nothing
is called per instance. `plan_alarms` is pure; `FleetQueryAlarms` writes through the
account budget; `failing_instances` counts from the data once contributors hit their
cap. Details: docs/alarm-modes.md (the query's syntax, the cap).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
# CloudWatch keeps at most this many contributors of one alarm in ALARM; past it the
# state reason says "100+ time series" (or "85+" when attributes are large).
CONTRIBUTORS_IN_ALARM_MAX = 100
CAPPED_REASON = re.compile(r"\b\d+\+")
# GetMetricData takes at most this many queries per call.
QUERIES_PER_CALL = 500
# The alarm's evaluation: period, and how many of the latest periods must breach.
PERIOD_SECONDS = 60
BREACHING_PERIODS = 2
# How far back data is read to judge the latest periods (CloudWatch may lag a minute).
EVALUATION_WINDOW = timedelta(minutes=5)
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


def query_tag_key(settings: Settings) -> str:
    """The one managed tag key the query filters on: the first of `MANAGED_TAG_KEYS`
    (`spawn:managed`, what the spawn CLI writes)."""
    return settings.managed_tag_keys[0]


def query_selects(tags: Mapping[str, str], settings: Settings) -> bool:
    """Whether the query's `WHERE` takes an instance with these tags: its query tag key
    set to exactly `true`. A managed instance it does not take (tagged only
    `spawn=true`, or `spawn:managed=True`) keeps its own per-instance alarms."""
    return tags.get(query_tag_key(settings)) == "true"


def query_expression(kind: AlarmKind, settings: Settings) -> str:
    """The Metrics Insights query of one check (see the module docstring for the syntax).

    For the status check with the default tags::

        SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId)
        WHERE tag."spawn:managed" = 'true'
        GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500
    """
    # Not SQL injection: every part is a constant or a validated setting (tag keys).
    where = f"WHERE {_quoted(query_tag_key(settings))} = 'true'"
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


def breaching(timestamps: Sequence[datetime], values: Sequence[float]) -> bool:
    """Whether a series fails the check as the alarm judges it: its latest
    `BREACHING_PERIODS` one-minute maxima are all at or above the threshold (1).

    >>> from datetime import UTC
    >>> t = [datetime(2026, 1, 27, 10, m, tzinfo=UTC) for m in (3, 2, 1)]
    >>> breaching(t, [1.0, 1.0, 0.0]), breaching(t, [1.0, 0.0, 1.0]), breaching(t[:1], [1.0])
    (True, False, False)
    """
    latest = sorted(zip(timestamps, values, strict=False), reverse=True)[:BREACHING_PERIODS]
    return len(latest) == BREACHING_PERIODS and all(value >= 1.0 for _, value in latest)


def capped(alarm: Mapping[str, Any] | None, listed: int) -> bool:
    """Whether the contributors in ALARM of a query alarm may be fewer than its failing
    series: `listed` reached the cap, or the state reason says "N+ time series"."""
    reason = str((alarm or {}).get("StateReason") or "")
    return listed >= CONTRIBUTORS_IN_ALARM_MAX or CAPPED_REASON.search(reason) is not None


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
    series_limit: int = QUERY_SERIES_LIMIT

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

    def health(self, candidates: Iterable[str], now: datetime) -> dict[str, dict[str, int]] | None:
        """For each check, the instances failing it now, with the epoch ms each began
        (or 0: unknown): the contributors in ALARM, and, for a check whose contributors
        are capped, every one of `candidates` (the running instances the query selects)
        the data shows failing (`failing_instances`). None where the endpoint lacks
        `DescribeAlarmContributors`."""
        in_alarm = self.contributors_in_alarm()
        if in_alarm is None:
            return None
        described = self.describe()
        wanted = sorted(set(candidates))
        for kind in ALARM_KINDS:
            listed = in_alarm.get(kind.suffix, {})
            if not capped(described.get(query_name(kind)), len(listed)):
                continue
            failing = self.failing_instances(kind, wanted, now)
            logger.warning(
                "alarm contributors capped: failing instances counted from the data",
                extra={
                    "alarm": query_name(kind),
                    "contributors": len(listed),
                    "failing": len(failing | set(listed)),
                },
            )
            in_alarm[kind.suffix] = {**dict.fromkeys(failing, 0), **listed}
        return in_alarm

    def failing_instances(
        self, kind: AlarmKind, candidates: Sequence[str], now: datetime
    ) -> set[str]:
        """The instances failing `kind`'s check at `now`, from its data: the query's
        series first (failing ones sort first); when the answer is full, so that a
        failing instance may be cut, each of `candidates` it did not return is read on
        its own (`MetricStat`, `QUERIES_PER_CALL` to a call)."""
        query: MetricDataQueryTypeDef = {
            "Id": "fleet",
            "Expression": query_expression(kind, self.settings),
            "Period": PERIOD_SECONDS,
        }
        returned = self._series([query], now)
        failing = {i for i, points in returned.items() if breaching(*points)}
        if len(returned) < self.series_limit:
            return failing
        rest = [i for i in candidates if i not in returned]
        for offset in range(0, len(rest), QUERIES_PER_CALL):
            chunk = rest[offset : offset + QUERIES_PER_CALL]
            queries: list[MetricDataQueryTypeDef] = [
                {
                    "Id": f"i{n}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/EC2",
                            "MetricName": kind.metric,
                            "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                        },
                        "Period": PERIOD_SECONDS,
                        "Stat": "Maximum",
                    },
                }
                for n, instance_id in enumerate(chunk)
            ]
            found = self._series(
                queries, now, {q["Id"]: i for q, i in zip(queries, chunk, strict=True)}
            )
            failing |= {i for i, points in found.items() if breaching(*points)}
        return failing

    def _series(
        self,
        queries: list[MetricDataQueryTypeDef],
        now: datetime,
        ids: Mapping[str, str] | None = None,
    ) -> dict[str, tuple[list[datetime], list[float]]]:
        """Each instance's datapoints over the evaluation window, joined across pages
        (a series' points may be split between them). The instance is `ids[query id]`,
        or, for a query expression, the series' label (its `InstanceId`)."""
        series: dict[str, tuple[list[datetime], list[float]]] = {}
        for page in self.cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=now - EVALUATION_WINDOW, EndTime=now
        ):
            for result in page["MetricDataResults"]:
                instance_id = ids.get(result["Id"]) if ids else result.get("Label")
                if not instance_id:
                    continue
                timestamps, values = series.setdefault(instance_id, ([], []))
                timestamps.extend(result.get("Timestamps", []))
                values.extend(result.get("Values", []))
        return series
