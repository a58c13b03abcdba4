"""Per-instance CloudWatch alarms (SPEC §5).

Alarm kinds are data: a new per-instance alarm is one more `AlarmKind`. Deciding what
to create and delete is pure (`plan`); `AlarmStore` does the I/O under CloudWatch's
real limits: calls paced under the per-account quota, `DeleteAlarms` in chunks of at
most 100 names, `DescribeAlarms` followed page by page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.core.batching import chunked
from chalicelib.core.pacing import Pacer, RateLimiter

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = logging.getLogger(__name__)

ALARM_PREFIX = "spawn-instance-"
DELETE_ALARMS_MAX_NAMES = 100
DESCRIBE_ALARMS_PAGE_SIZE = 100
_ALARM_NAME = re.compile(r"^spawn-instance-(i-[0-9a-f]{8,17})-([a-z]+)$")


@dataclass(frozen=True)
class AlarmKind:
    """One alarm every watched instance gets.

    Attributes:
        suffix: last part of the name, `spawn-instance-{id}-{suffix}`.
        metric: the `AWS/EC2` metric it watches.
        description: what a person reading the alarm sees.
        recoverable: whether EC2's recover action may be added (system checks only:
            recovery moves the instance to healthy hardware).
    """

    suffix: str
    metric: str
    description: str
    recoverable: bool = False


ALARM_KINDS: tuple[AlarmKind, ...] = (
    AlarmKind("status", "StatusCheckFailed_Instance", "Instance status check failed"),
    AlarmKind("system", "StatusCheckFailed_System", "System status check failed", True),
)


@dataclass(frozen=True)
class Watched:
    """An instance that should have alarms, and the array it belongs to (if any)."""

    instance_id: str
    array_id: str | None = None


@dataclass(frozen=True)
class AlarmPlan:
    """What to change so the alarms match the watched instances."""

    create: tuple[Watched, ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete


def alarm_names(instance_id: str) -> list[str]:
    """The names of every alarm an instance gets, in `ALARM_KINDS` order."""
    return [f"{ALARM_PREFIX}{instance_id}-{kind.suffix}" for kind in ALARM_KINDS]


def instance_of(alarm_name: str) -> str | None:
    """The instance id in a per-instance alarm name, or None for any other name."""
    match = _ALARM_NAME.fullmatch(alarm_name)
    if match is None or match.group(2) not in {k.suffix for k in ALARM_KINDS}:
        return None
    return match.group(1)


def plan(watched: Iterable[Watched], existing: Iterable[str]) -> AlarmPlan:
    """Alarms to create (instances missing any of theirs) and names to delete (orphans).

    Names under the prefix that this version does not recognise are left alone.
    """
    existing_names = set(existing)
    wanted: dict[str, Watched] = {w.instance_id: w for w in watched}
    create = tuple(
        w
        for w in sorted(wanted.values(), key=lambda w: w.instance_id)
        if not existing_names.issuperset(alarm_names(w.instance_id))
    )
    delete = tuple(
        sorted(
            name
            for name in existing_names
            if (owner := instance_of(name)) is not None and owner not in wanted
        )
    )
    return AlarmPlan(create, delete)


def partition_of(region: str) -> str:
    """The ARN partition a region belongs to."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def alarm_request(
    watched: Watched,
    kind: AlarmKind,
    *,
    topic_arn: str,
    region: str,
    recover: bool,
) -> dict[str, Any]:
    """The exact `PutMetricAlarm` request for one alarm (SPEC §5)."""
    actions = [topic_arn]
    if recover and kind.recoverable:
        actions.append(f"arn:{partition_of(region)}:automate:{region}:ec2:recover")
    tags = [{"Key": "spawn:instance-id", "Value": watched.instance_id}]
    if watched.array_id:
        tags.append({"Key": "spawn:job-array-id", "Value": watched.array_id})
    return {
        "AlarmName": f"{ALARM_PREFIX}{watched.instance_id}-{kind.suffix}",
        "AlarmDescription": kind.description,
        "Namespace": "AWS/EC2",
        "MetricName": kind.metric,
        "Dimensions": [{"Name": "InstanceId", "Value": watched.instance_id}],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "AlarmActions": actions,
        # Recovery is news too: without it an instance would look unhealthy forever.
        "OKActions": [topic_arn],
        "Tags": tags,
    }


@dataclass
class AlarmStore:
    """CloudWatch I/O for per-instance alarms.

    Args:
        cloudwatch: a CloudWatch client (its retry config handles throttling that
            slips past the pacing).
        topic_arn: the alerts topic, every alarm's action.
        region: for the EC2 recover action's ARN.
        recover: add EC2's recover action to recoverable kinds (default False).
        put_limiter / delete_limiter: pacing for `PutMetricAlarm` and `DeleteAlarms`,
            which have separate quotas: deployed, the account-wide budget every alarm
            writer shares (`chalicelib.alarms.budget`).
    """

    cloudwatch: CloudWatchClient
    topic_arn: str
    region: str
    recover: bool = False
    put_limiter: Pacer = field(default_factory=lambda: RateLimiter(3.0))
    delete_limiter: Pacer = field(default_factory=lambda: RateLimiter(3.0))

    def expect(self, instances: int) -> None:
        """About this many instances' alarms will be put next (lets a shared budget
        lease their calls together)."""
        self.put_limiter.reserve(instances * len(ALARM_KINDS))

    def put(self, watched: Iterable[Watched]) -> None:
        """Create (or overwrite, which is idempotent) every alarm of each instance."""
        items = list(watched)
        self.expect(len(items))
        for item in items:
            for kind in ALARM_KINDS:
                request = alarm_request(
                    item, kind, topic_arn=self.topic_arn, region=self.region, recover=self.recover
                )
                self.put_limiter.acquire()
                self.cloudwatch.put_metric_alarm(**request)

    def delete(self, names: Sequence[str]) -> None:
        """Delete alarms by name, at most 100 per call.

        CloudWatch refuses a whole `DeleteAlarms` call when a name does not exist;
        then the chunk is narrowed to the names that do and tried once more.
        """
        unique = sorted(set(names))
        self.delete_limiter.reserve(-(-len(unique) // DELETE_ALARMS_MAX_NAMES))
        for chunk in chunked(unique, DELETE_ALARMS_MAX_NAMES):
            self.delete_limiter.acquire()
            try:
                self.cloudwatch.delete_alarms(AlarmNames=list(chunk))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFound":
                    raise
                present = self._existing(chunk)
                if present:
                    self.delete_limiter.acquire()
                    self.cloudwatch.delete_alarms(AlarmNames=present)

    def _existing(self, names: Sequence[str]) -> list[str]:
        response = self.cloudwatch.describe_alarms(
            AlarmNames=list(names), AlarmTypes=["MetricAlarm"], MaxRecords=DELETE_ALARMS_MAX_NAMES
        )
        return [a["AlarmName"] for a in response.get("MetricAlarms", [])]

    def list_names(self) -> set[str]:
        """Every per-instance alarm name, following `NextToken` through every page."""
        names: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "AlarmNamePrefix": ALARM_PREFIX,
                "AlarmTypes": ["MetricAlarm"],
                "MaxRecords": DESCRIBE_ALARMS_PAGE_SIZE,
            }
            if token:
                kwargs["NextToken"] = token
            page = self.cloudwatch.describe_alarms(**kwargs)
            names.update(alarm["AlarmName"] for alarm in page.get("MetricAlarms", []))
            token = page.get("NextToken")
            if not token:
                return names

    def apply(self, alarm_plan: AlarmPlan) -> None:
        """Carry out a plan: creations first, so a failure never leaves fewer alarms."""
        self.put(alarm_plan.create)
        self.delete(alarm_plan.delete)
