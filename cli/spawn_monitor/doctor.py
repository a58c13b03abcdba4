"""`spawn-monitor doctor`: the guide's troubleshooting section as one command.

It reads (never writes) the deployment through AWS read APIs and the HTTP API:

1. the API answers `/health` and, signed, `/fleet`;
2. the tables, topics, queues and EventBridge rule exist (names from the stack's
   resources, else the default names), the progress table streams both images, the
   rule is enabled with a target, and the dead-letter queues are empty;
3. the fleet alarm exists, and the `spawn-instance-*` alarms equal the running managed
   instances (two each; in `fleet-query` mode, only for those not tagged
   `spawn:managed=true`); instances launched in the last
   5 minutes may still be waiting for theirs, and those stopped since may keep theirs;
4. workers' metrics (`Spawn/Workers`, and `Spawn/GPU` where GPU instances run) and the
   scheduled functions' log groups received data recently;
5. this monitoring's own monthly CloudWatch cost at the current rate, from the counts of
   alarms, custom metric series publishing now (last 3 h), dashboards and the last day's
   log ingestion, at the prices in `spawn_monitor.pricing`.

Each problem comes with its fix; the exit status is 1 when any check fails. Against
the local stack (`AWS_ENDPOINT_URL` on loopback) the log checks are skipped: it logs to
its console. Pure decisions (`alarm_drift`, `estimate`) are separate from the reads.

The report is `spawn_monitor.doctor_report`, the cost model `spawn_monitor.pricing`. Its
length (over 400 lines): `Doctor`, one read-only method per check of the list above.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from rich.console import Console

from spawn_monitor.api import Api, ApiError, is_loopback, locate
from spawn_monitor.doctor_cost import feature_estimate, feature_usage, tag_check
from spawn_monitor.doctor_report import report
from spawn_monitor.doctor_trail import NAME as NAME_TRAIL
from spawn_monitor.doctor_trail import trail_check
from spawn_monitor.pricing import (
    COVERAGE_RUNS_PER_MONTH,
    PRICES,
    Usage,
    estimate,
)

# What a deployment consists of when no stack says otherwise (infra/resources.json; a
# test in the repository holds the two together).
DEFAULT_RESOURCES: dict[str, tuple[str, ...]] = {
    "AWS::DynamoDB::Table": (
        "spawn-progress",
        "spawn-instances",
        "spawn-arrays",
        "spawn-alert-history",
        "spawn-fleet-stats",
    ),
    "AWS::SNS::Topic": ("spawn-alerts", "spawn-critical"),
    "AWS::SQS::Queue": (
        "spawn-lifecycle-events",
        "spawn-lifecycle-events-dlq",
        "spawn-failed-events",
    ),
    "AWS::Events::Rule": ("spawn-ec2-lifecycle",),
}
PROGRESS_TABLE = "spawn-progress"
DEAD_LETTER_QUEUES = ("spawn-lifecycle-events-dlq", "spawn-failed-events")
FLEET_ALARMS = ("spawn-fleet-unhealthy",)
FLEET_QUERY_ALARMS = ("spawn-fleet-status-check", "spawn-fleet-system-check")
ALARM_PREFIX = "spawn-instance-"
ALARM_SUFFIXES = ("status", "system")
MANAGED_TAG_KEYS = ("spawn:managed", "spawn")
OPT_OUT = ("spawn:monitoring", "off")
LAUNCH_GRACE = timedelta(minutes=5)
# EC2's StateTransitionReason, e.g. "User initiated (2026-01-27 10:00:00 GMT)".
_TRANSITION_AT = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)")
RECENTLY_ACTIVE = "PT3H"
EVERY_MINUTE_FUNCTIONS = ("fleet_tick", "progress_tick")
LOG_SILENCE_MAX = timedelta(minutes=10)
# GPU instance families (g4dn, g5, p4d, ...): their workers should publish Spawn/GPU.
GPU_FAMILY_PREFIXES = ("g", "p")
OWN_NAMESPACES = (
    "Spawn/SpotInterruptions",
    "Spawn/Arrays",
    "Spawn/Fleet",
    "Spawn/Workers",
    "Spawn/GPU",
    "Spawn/Performance",
    "Spawn/Cost",
)


@dataclass(frozen=True)
class Check:
    """One finding: `status` is ok, fail, warn (worth a look), note (an optional signal
    is absent) or skip (not applicable)."""

    name: str
    status: str
    detail: str
    fix: str = ""


def alarm_kind(alarm: Mapping[str, Any]) -> str:
    """standard, high_resolution, anomaly or query (Metrics Insights, billed per metric
    it analyzes), as CloudWatch bills a metric alarm."""
    if alarm.get("ThresholdMetricId"):
        return "anomaly"
    if any(
        str(m.get("Expression", "")).lstrip().upper().startswith("SELECT")
        for m in alarm.get("Metrics") or []
    ):
        return "query"
    if int(alarm.get("Period") or 60) < 60:
        return "high_resolution"
    return "standard"


@dataclass(frozen=True)
class Drift:
    """Alarms missing for running managed instances, and alarms with no instance."""

    missing: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def alarm_drift(
    instances: Mapping[str, datetime], alarms: Iterable[str], fleet_query: bool, now: datetime
) -> Drift:
    """Compare the `spawn-instance-*` alarms with the running managed instances.

    Args:
        instances: running managed instance ids and their launch times.
        alarms: existing alarm names with the `spawn-instance-` prefix.
        fleet_query: `ALARM_MODE=fleet-query`: no per-instance alarm should exist.
        now: instances launched within `LAUNCH_GRACE` of it may still lack alarms.
    """
    existing = set(alarms)
    wanted: dict[str, str] = {}
    if not fleet_query:
        for instance_id in instances:
            for suffix in ALARM_SUFFIXES:
                wanted[f"{ALARM_PREFIX}{instance_id}-{suffix}"] = instance_id
    absent = sorted(set(wanted) - existing)
    waiting = [n for n in absent if now - instances[wanted[n]] < LAUNCH_GRACE]
    return Drift(
        missing=[n for n in absent if n not in waiting],
        orphaned=sorted(existing - set(wanted)),
        waiting=waiting,
    )


def _tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def aws_problem(exc: BotoCoreError | ClientError) -> tuple[str, str]:
    """What an AWS read that failed means, and its fix, in one line each."""
    if isinstance(exc, NoRegionError):
        return "no AWS region", "set AWS_DEFAULT_REGION or pass --region (make run prints it)"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials", (
            "configure a profile or keys; for the local stack, the AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY line make run prints"
        )
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach AWS at {exc.kwargs.get('endpoint_url', '?')}", (
            "is the stack running (make run), and AWS_ENDPOINT_URL right?"
        )
    return (
        f"an AWS read failed: {' '.join(str(exc).split())}",
        "check your credentials' read permissions and the region (--region)",
    )


def _few(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class Doctor:
    """Runs the checks with clients from `session` (AWS_ENDPOINT_URL is honoured).

    Args:
        session: AWS credentials and region.
        api: the HTTP API, or the error met while locating it.
        stack: the CloudFormation stack to read resource names from.
        local: the AWS endpoint is the local stack's (skips CloudWatch Logs checks).
        clock: the current time.
    """

    def __init__(
        self,
        session: boto3.Session,
        api: Api | ApiError,
        stack: str,
        local: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session = session
        self.api = api
        self.stack = stack
        self.local = local
        self.now: datetime = clock()
        self.checks: list[Check] = []
        self.running: dict[str, dict[str, Any]] = {}
        self.functions: list[str] = []
        # False once AWS cannot be read at all (no region, credentials or endpoint).
        self.aws_ok = True
        self.tag_active = False

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def run(self) -> list[Check]:
        self.check_api()
        try:
            resources, functions, source = self.resources()
        except (ClientError, BotoCoreError) as exc:
            self.aws_ok = False
            self.add("aws", "fail", *aws_problem(exc))
            return self.checks
        self.functions = functions
        self.add("resources", "ok", source)
        checks: tuple[Callable[[], None], ...] = (
            lambda: self.check_tables(resources["AWS::DynamoDB::Table"]),
            lambda: self.check_topics(resources["AWS::SNS::Topic"]),
            lambda: self.check_queues(resources["AWS::SQS::Queue"]),
            lambda: self.check_rules(resources["AWS::Events::Rule"]),
            self.check_alarms,
            self.check_worker_metrics,
            lambda: self.check_logs(functions),
            self.check_trail,
            self.check_cost_tag,
        )
        for check in checks:
            try:
                check()
            except (ClientError, BotoCoreError) as exc:
                self.add("aws", "fail", *aws_problem(exc))
                if isinstance(exc, (EndpointConnectionError, NoCredentialsError, NoRegionError)):
                    self.aws_ok = False  # every other read would fail the same way
                    break
        return self.checks

    def check_trail(self) -> None:
        if self.local:
            self.add(NAME_TRAIL, "skip", "the local stack's simulator stands in for CloudTrail")
        else:
            self.add(NAME_TRAIL, *trail_check(self.client("cloudtrail"), self.session.region_name))

    def check_api(self) -> None:
        if isinstance(self.api, ApiError):
            self.add("api", "fail", str(self.api), "give the API with --endpoint or --stack")
            return
        try:
            self.api.get("/health")
            self.api.get("/fleet")
        except ApiError as exc:
            self.add("api", "fail", str(exc), "see the message; `make run` starts the local stack")
            return
        self.add("api", "ok", f"{self.api.target.endpoint} answers /health and /fleet")

    def resources(self) -> tuple[dict[str, tuple[str, ...]], list[str], str]:
        """Resource names by type, Lambda function names, and where they came from."""
        try:
            pages = self.client("cloudformation").get_paginator("list_stack_resources")
            found: dict[str, list[str]] = {}
            for page in pages.paginate(StackName=self.stack):
                for resource in page["StackResourceSummaries"]:
                    physical = resource.get("PhysicalResourceId", "")
                    name = physical.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
                    found.setdefault(resource["ResourceType"], []).append(name.split("|")[-1])
        except ClientError:
            return DEFAULT_RESOURCES, [], f"default names (no CloudFormation stack {self.stack})"
        names = {kind: tuple(sorted(found.get(kind, []))) for kind in DEFAULT_RESOURCES}
        return names, found.get("AWS::Lambda::Function", []), f"from stack {self.stack}"

    def check_tables(self, tables: tuple[str, ...]) -> None:
        dynamodb = self.client("dynamodb")
        missing = []
        for table in tables:
            try:
                description = dynamodb.describe_table(TableName=table)["Table"]
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise
                missing.append(table)
                continue
            stream = description.get("StreamSpecification") or {}
            if (
                table.startswith(PROGRESS_TABLE)
                and stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES"
            ):
                self.add(
                    f"table {table}",
                    "fail",
                    "its stream is off or not NEW_AND_OLD_IMAGES: array summaries stop",
                    f"aws dynamodb update-table --table-name {table} --stream-specification "
                    "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES",
                )
        if missing:
            self.add(
                "tables",
                "fail",
                f"missing: {_few(missing)}",
                "redeploy (make deploy) to recreate them; a table deleted by hand loses its "
                "data unless restored from a backup (aws dynamodb restore-table-from-backup)",
            )
        else:
            self.add("tables", "ok", f"{len(tables)} exist: {_few(list(tables))}")

    def check_topics(self, topics: tuple[str, ...]) -> None:
        sns = self.client("sns")
        arns = {
            t["TopicArn"].rsplit(":", 1)[-1]: t["TopicArn"]
            for page in sns.get_paginator("list_topics").paginate()
            for t in page["Topics"]
        }
        missing = [t for t in topics if t not in arns]
        if missing:
            self.add(
                "topics",
                "fail",
                f"missing: {_few(missing)}",
                "redeploy (make deploy); then subscribe your e-mail or pager again",
            )
            return
        quiet = [
            t
            for t in topics
            if not sns.list_subscriptions_by_topic(TopicArn=arns[t]).get("Subscriptions")
        ]
        if quiet:
            self.add(
                "topics",
                "warn",
                f"no subscription on {_few(quiet)}: alerts reach nobody",
                "aws sns subscribe --topic-arn ARN --protocol email "
                "--notification-endpoint you@example.com",
            )
        else:
            self.add("topics", "ok", f"{len(topics)} exist with subscribers: {_few(list(topics))}")

    def check_queues(self, queues: tuple[str, ...]) -> None:
        sqs = self.client("sqs")
        missing = []
        for queue in queues:
            try:
                url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            except ClientError:
                missing.append(queue)
                continue
            if queue in DEAD_LETTER_QUEUES:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                waiting = int(attributes.get("ApproximateNumberOfMessages", "0"))
                if waiting:
                    self.add(
                        f"queue {queue}",
                        "warn",
                        f"{waiting} events failed processing and wait here",
                        f"inspect: aws sqs receive-message --queue-url {url} "
                        "--max-number-of-messages 10; once the cause is fixed, redrive them "
                        "with aws sqs start-message-move-task",
                    )
        if missing:
            self.add("queues", "fail", f"missing: {_few(missing)}", "redeploy (make deploy)")
        else:
            self.add("queues", "ok", f"{len(queues)} exist: {_few(list(queues))}")

    def check_rules(self, rules: tuple[str, ...]) -> None:
        events = self.client("events")
        problems = []
        for rule in rules:
            try:
                state = events.describe_rule(Name=rule).get("State")
            except ClientError:
                problems.append(f"{rule} is missing")
                continue
            if state != "ENABLED":
                problems.append(f"{rule} is {state} (aws events enable-rule --name {rule})")
            elif not events.list_targets_by_rule(Rule=rule).get("Targets"):
                problems.append(f"{rule} has no target")
        if problems:
            self.add(
                "rules",
                "fail",
                "; ".join(problems),
                "EC2 events do not reach the lifecycle queue: redeploy (make deploy)",
            )
        else:
            self.add("rules", "ok", f"{len(rules)} enabled with targets: {_few(list(rules))}")

    def _running_managed(self) -> dict[str, dict[str, Any]]:
        ec2 = self.client("ec2")
        found: dict[str, dict[str, Any]] = {}
        for key in MANAGED_TAG_KEYS:
            filters = [
                {"Name": "instance-state-name", "Values": ["running"]},
                {"Name": f"tag:{key}", "Values": ["true"]},
            ]
            for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                        if tags.get(OPT_OUT[0]) != OPT_OUT[1]:
                            found[instance["InstanceId"]] = instance
        return found

    def check_alarms(self) -> None:
        cloudwatch = self.client("cloudwatch")
        present = {
            a["AlarmName"]
            for a in cloudwatch.describe_alarms(AlarmNames=[*FLEET_ALARMS, *FLEET_QUERY_ALARMS])[
                "MetricAlarms"
            ]
        }
        fleet_query = set(FLEET_QUERY_ALARMS) <= present
        missing = [a for a in FLEET_ALARMS if a not in present]
        if missing:
            self.add(
                "fleet alarms",
                "fail",
                f"missing: {_few(missing)}",
                "the fleet_tick function creates it when a new copy starts: redeploy (make "
                "deploy) or update the function's configuration to start a new copy",
            )
        else:
            self.add("fleet alarms", "ok", f"present: {_few(list(FLEET_ALARMS))}")
        self.running = self._running_managed()
        names = [
            a["AlarmName"]
            for page in cloudwatch.get_paginator("describe_alarms").paginate(
                AlarmNamePrefix=ALARM_PREFIX, PaginationConfig={"PageSize": 100}
            )
            for a in page["MetricAlarms"]
        ]
        # In fleet-query mode the query selects `spawn:managed=true` only (the backend's
        # `query_selects`); any other managed instance keeps its own two alarms.
        launched = {
            i: inst["LaunchTime"]
            for i, inst in self.running.items()
            if not (fleet_query and _tags(inst).get(MANAGED_TAG_KEYS[0]) == "true")
        }
        drift = alarm_drift(launched, names, False, self.now)
        leaving = self._just_stopped(drift.orphaned)
        if leaving:
            orphaned = [n for n in drift.orphaned if n not in leaving]
            drift = Drift(drift.missing, orphaned, drift.waiting)
        detail = self._alarm_summary(fleet_query, len(launched), len(names), drift)
        if leaving:
            detail += (
                f"; {len(leaving)} of instances that stopped running in the last 5 minutes, "
                "still to be deleted"
            )
        if drift.missing or drift.orphaned:
            problems = []
            if drift.missing:
                problems.append(f"{len(drift.missing)} missing ({_few(drift.missing, 3)})")
            if drift.orphaned:
                problems.append(
                    f"{len(drift.orphaned)} without a running instance ({_few(drift.orphaned, 3)})"
                )
            self.add(
                "instance alarms",
                "fail",
                f"{detail}: {'; '.join(problems)}",
                "the reconcile function repairs this every 15 minutes; to repair now: aws lambda "
                "invoke --function-name <stack>-reconcile /dev/null (locally it runs every tick)",
            )
        else:
            self.add("instance alarms", "ok", detail)

    def _just_stopped(self, orphaned: list[str]) -> list[str]:
        """The alarms among `orphaned` whose instance left `running` within
        `LAUNCH_GRACE` (the lifecycle deletes them on its next batch)."""
        ids = sorted({n[len(ALARM_PREFIX) :].rsplit("-", 1)[0] for n in orphaned})
        if not ids:
            return []
        recent = set()
        pages = self.client("ec2").get_paginator("describe_instances")
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            for page in pages.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        match = _TRANSITION_AT.search(instance.get("StateTransitionReason", ""))
                        if instance.get("State", {}).get("Name") == "running" or not match:
                            continue
                        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
                        if self.now - at.replace(tzinfo=UTC) < LAUNCH_GRACE:
                            recent.add(instance["InstanceId"])
        return [n for n in orphaned if n[len(ALARM_PREFIX) :].rsplit("-", 1)[0] in recent]

    def _alarm_summary(self, fleet_query: bool, own: int, alarms: int, drift: Drift) -> str:
        """What was counted, in words that cannot contradict each other: which instances
        should have their own two alarms, how many exist, and how many are still due."""
        running = len(self.running)
        if fleet_query:
            head = (
                f"{running} running managed instances; fleet-query mode: the fleet alarms "
                f"watch those tagged spawn:managed=true"
            )
            head += f"; {own} not so tagged should have their own two each" if own else ""
        else:
            head = f"{running} running managed instances, each with its own two alarms"
        head += f"; {alarms} instance alarms exist"
        if drift.waiting:
            launching = len({name.rsplit("-", 1)[0] for name in drift.waiting})
            head += (
                f"; {len(drift.waiting)} still to come for {launching} instances "
                "launched in the last 5 minutes"
            )
        elif not (drift.missing or drift.orphaned):
            head += ", as expected"
        return head

    def _recent_series(self, namespace: str) -> int:
        """Distinct series (name and dimensions) that received data in the last 3 h.

        CloudWatch lists each series once; moto lists it once per data point, so
        series are counted by identity, not by listing entries.
        """
        pages = self.client("cloudwatch").get_paginator("list_metrics")
        return len(
            {
                (
                    metric["MetricName"],
                    frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])),
                )
                for page in pages.paginate(Namespace=namespace, RecentlyActive=RECENTLY_ACTIVE)
                for metric in page["Metrics"]
            }
        )

    def check_worker_metrics(self) -> None:
        if not self.running:
            self.add("worker metrics", "skip", "no running managed instances to expect them from")
            return
        gpus = [
            i
            for i, inst in self.running.items()
            if str(inst.get("InstanceType", "")).startswith(GPU_FAMILY_PREFIXES)
        ]
        for namespace, instances in (("Spawn/Workers", list(self.running)), ("Spawn/GPU", gpus)):
            if not instances:
                self.add(f"metrics {namespace}", "skip", "no GPU instances running")
                continue
            series = self._recent_series(namespace)
            if series:
                self.add(
                    f"metrics {namespace}", "ok", f"{series} series received data in the last 3 h"
                )
            elif namespace == "Spawn/GPU":
                self.add(
                    f"metrics {namespace}",
                    "note",
                    f"no GPU metrics in the last 3 h from {len(instances)} GPU instances "
                    "(optional: spawn-report gpu publishes them)",
                )
            else:
                self.add(
                    f"metrics {namespace}",
                    "fail",
                    f"no data in the last 3 h while {len(instances)} instances run",
                    "have workers publish them (spawn-report metric / gpu, or the guide's "
                    "put-metric-data loop) and let their instance role call "
                    "cloudwatch:PutMetricData",
                )

    def check_logs(self, functions: list[str]) -> None:
        if self.local:
            self.add(
                "log groups", "skip", "the local stack logs to its console, not CloudWatch Logs"
            )
            return
        if not functions:
            self.add(
                "log groups",
                "warn",
                f"no stack {self.stack}: its functions are unknown",
                "pass --stack with the deployed stack's name",
            )
            return
        logs = self.client("logs")
        for function in functions:
            group = f"/aws/lambda/{function}"
            if not function.endswith(EVERY_MINUTE_FUNCTIONS):
                continue
            streams = logs.describe_log_streams(
                logGroupName=group, orderBy="LastEventTime", descending=True, limit=1
            ).get("logStreams", [])
            last = streams[0].get("lastEventTimestamp") if streams else None
            silent = (
                last is None
                or self.now - datetime.fromtimestamp(last / 1000, UTC) > LOG_SILENCE_MAX
            )
            if silent:
                self.add(
                    f"logs {function}",
                    "fail",
                    "nothing logged for over 10 minutes by a function that runs every minute",
                    "check its schedule rule is enabled, and its errors: "
                    f"aws logs tail {group} --since 1h",
                )
            else:
                self.add(f"logs {function}", "ok", "logged in the last 10 minutes")

    def check_cost_tag(self) -> None:
        """Whether Cost Explorer groups the bill by array (`spawn_monitor.doctor_cost`)."""
        if self.local:
            self.add("cost tag", "skip", "the local stack (moto) has no ListCostAllocationTags")
            return
        try:
            status, detail, fix = tag_check(self.session.client("ce", region_name="us-east-1"))
        except (ClientError, BotoCoreError) as exc:
            detail, fix = aws_problem(exc)
            self.add("cost tag", "warn", f"cost allocation tags unreadable: {detail}", fix)
            return
        self.tag_active = status == "ok"
        self.add("cost tag", status, detail, fix)

    def usage(self, functions: list[str]) -> Usage:
        cloudwatch = self.client("cloudwatch")
        kinds = {"standard": 0, "high_resolution": 0, "anomaly": 0, "query": 0}
        composite = 0
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix="spawn-", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            for alarm in page.get("MetricAlarms", []):
                kinds[alarm_kind(alarm)] += 1
            composite += len(page.get("CompositeAlarms", []))
        # Billing is per series and hour it receives data: the series publishing now are
        # what a month costs at the current rate (a finished array's stop counting).
        series = sum(self._recent_series(namespace) for namespace in OWN_NAMESPACES)
        dashboards = len(
            cloudwatch.list_dashboards(DashboardNamePrefix="spawn-").get("DashboardEntries", [])
        )
        daily_bytes = 0.0
        for function in functions:
            stats = cloudwatch.get_metric_statistics(
                Namespace="AWS/Logs",
                MetricName="IncomingBytes",
                Dimensions=[{"Name": "LogGroupName", "Value": f"/aws/lambda/{function}"}],
                StartTime=self.now - timedelta(days=1),
                EndTime=self.now,
                Period=86400,
                Statistics=["Sum"],
            )
            daily_bytes += sum(p.get("Sum", 0.0) for p in stats.get("Datapoints", []))
        return Usage(
            standard_alarms=kinds["standard"],
            high_resolution_alarms=kinds["high_resolution"],
            anomaly_alarms=kinds["anomaly"],
            composite_alarms=composite,
            # ALARM_MODE=fleet-query: each query alarm analyzes one series per instance.
            query_alarm_metrics=kinds["query"] * len(self.running),
            coverage_metrics_per_month=COVERAGE_RUNS_PER_MONTH * len(self.running)
            if kinds["query"]
            else 0,
            metric_series=series,
            dashboards=dashboards,
            log_gb_per_month=daily_bytes * 30 / 1e9,
        )


def run_doctor(
    session: boto3.Session,
    endpoint: str | None,
    stack: str,
    sign: str,
    region: str | None,
    console: Console,
    as_json: bool = False,
) -> int:
    """Run every check and print them; 1 if any failed."""
    api: Api | ApiError
    try:
        api = Api(locate(session, endpoint, stack, sign, region), session)
    except ApiError as exc:
        api = exc
    aws_endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    doctor = Doctor(session, api, stack, local=bool(aws_endpoint) and is_loopback(aws_endpoint))
    checks = doctor.run()
    usage = Usage()
    if doctor.aws_ok:
        try:
            usage = doctor.usage(doctor.functions)
        except (ClientError, BotoCoreError) as exc:
            checks.append(Check("cost", "warn", f"could not count usage: {aws_problem(exc)[0]}"))
    failed = any(c.status == "fail" for c in checks)
    feature = feature_usage(doctor.tag_active, doctor.running.values())
    if as_json:
        document = {
            "ok": not failed,
            "checks": [asdict(c) for c in checks],
            "cost": {
                "usage": asdict(usage),
                "usd_per_month": estimate(usage),
                "prices": asdict(PRICES),
                "cost_per_array": {
                    "usage": {**asdict(feature), "price_cache_writes": feature.price_cache_writes},
                    "usd_per_month": feature_estimate(feature),
                },
            },
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        report(checks, usage, console, feature)
    return 1 if failed else 0
