"""Apply the console: read what exists, plan the difference, make only those calls.

`ConsoleSetup.run` does everything (the `setup` function: on deploy and every 6 hours,
so drift heals); `sync_array_dashboards` only adds new arrays' dashboards and removes
expired ones (every minute, never reading bodies). A second run with nothing changed
makes no write; alarm writes are paced; calls in `CONSOLE_SKIP_CALLS` are skipped.
Details: docs/operations.md ("The monitoring console").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.exceptions import ClientError

from chalicelib.console import dashboards
from chalicelib.console.alarms import children_of, owns
from chalicelib.console.arrays import read_arrays
from chalicelib.console.description import Console, Deployment, array_dashboards, describe
from chalicelib.console.logs import FILTER_PREFIX, GROUP_PREFIX, QUERY_PREFIX
from chalicelib.console.plan import (
    LOGS,
    Call,
    Existing,
    ExistingAlarm,
    Plan,
    dashboard_calls,
    plan,
)
from chalicelib.core.clients import BILLING_REGION
from chalicelib.core.pacing import Pacer, RateLimiter
from chalicelib.core.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = logging.getLogger(__name__)

ALARM_WRITES = frozenset({"PutMetricAlarm", "PutCompositeAlarm", "DeleteAlarms"})
NOT_FOUND = frozenset({"ResourceNotFound", "ResourceNotFoundException"})


class SetupIncomplete(RuntimeError):
    """Some writes failed; the others were made. The message lists the failures."""


@dataclass
class SetupReport:
    """What one run did: writes by API, calls skipped or failed, alarms held."""

    writes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    def summary(self) -> dict[str, Any]:
        return {
            "writes": dict(self.writes),
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "held": self.held,
        }


@dataclass
class ConsoleSetup:
    """The console's I/O.

    Args:
        settings: the deployment's settings.
        deployment: region, account and topics.
        cloudwatch_by_region: a CloudWatch client per region, at least the stack's and
            us-east-1 (the same client when the stack runs there).
        logs: a CloudWatch Logs client in the stack's region.
        dynamodb: for the arrays table.
        alarm_limiter: paces alarm puts under the account's quota (deployed: the
            account-wide budget every alarm writer shares).
        alarm_delete_limiter: paces `DeleteAlarms`, which has a quota of its own.

    Example:
        >>> report = setup.run(datetime.now(UTC))
        >>> report.write_count   # 0 when nothing changed since the last run
    """

    settings: Settings
    deployment: Deployment
    cloudwatch_by_region: Mapping[str, CloudWatchClient]
    logs: Any
    dynamodb: Any
    alarm_limiter: Pacer = field(default_factory=lambda: RateLimiter(1.0))
    alarm_delete_limiter: Pacer = field(default_factory=lambda: RateLimiter(1.0))
    _said: set[str] = field(default_factory=set, init=False)

    @property
    def skip(self) -> frozenset[str]:
        return frozenset(self.settings.console_skip_calls)

    @property
    def region(self) -> str:
        return self.deployment.region

    # Entry points ---------------------------------------------------------------------

    def describe(self, now: datetime) -> Console:
        arrays = read_arrays(self.dynamodb, self.settings.arrays_table)
        return describe(self.settings, self.deployment, arrays, now)

    def run(self, now: datetime) -> SetupReport:
        """Bring everything to the description; raises `SetupIncomplete` if any write
        failed (after making all the others)."""
        console = self.describe(now)
        self._say_once_about_limits()
        steps = plan(console, self.read(console), self.region, dashboards.is_owned)
        return self.apply(steps)

    def sync_array_dashboards(self, now: datetime) -> SetupReport:
        """Create missing array dashboards and delete expired ones (bodies not read)."""
        arrays = read_arrays(self.dynamodb, self.settings.arrays_table)
        wanted = array_dashboards(self.settings, self.region, arrays, now)
        existing: dict[str, str | None] = dict.fromkeys(
            self._dashboard_names(dashboards.ARRAY_PREFIX)
        )
        calls = dashboard_calls(self.region, wanted, existing, dashboards.is_owned)
        return self.apply(Plan(tuple(calls)))

    # Reads ----------------------------------------------------------------------------

    def read(self, console: Console) -> Existing:
        """Everything the console owns or describes, as it exists now."""
        existing = Existing()
        existing.dashboards = {
            name: self._cloudwatch(self.region).get_dashboard(DashboardName=name)["DashboardBody"]
            for name in self._dashboard_names("spawn-")
            if dashboards.is_owned(name)
        }
        wanted = {(a.region, a.name) for a in console.alarms}
        for region in self._regions():
            existing.alarms[region] = self._alarms(region, wanted)
            existing.detectors[region] = (
                None if "DescribeAnomalyDetectors" in self.skip else list(self._detectors(region))
            )
        groups = list(
            self._pages(
                self.logs,
                "describe_log_groups",
                "logGroups",
                "nextToken",
                logGroupNamePrefix=GROUP_PREFIX,
            )
        )
        existing.log_groups = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
        for group in console.log_groups:
            if group.name in existing.log_groups:
                existing.metric_filters[group.name] = {
                    f["filterName"]: f
                    for f in self._pages(
                        self.logs,
                        "describe_metric_filters",
                        "metricFilters",
                        "nextToken",
                        logGroupName=group.name,
                        filterNamePrefix=FILTER_PREFIX,
                    )
                }
        existing.queries = None if "DescribeQueryDefinitions" in self.skip else self._queries()
        return existing

    def _regions(self) -> list[str]:
        return sorted({self.region, BILLING_REGION})

    def _cloudwatch(self, region: str) -> CloudWatchClient:
        return self.cloudwatch_by_region[region]

    def _dashboard_names(self, prefix: str) -> list[str]:
        return [
            entry["DashboardName"]
            for entry in self._pages(
                self._cloudwatch(self.region),
                "list_dashboards",
                "DashboardEntries",
                "NextToken",
                DashboardNamePrefix=prefix,
            )
        ]

    def _alarms(self, region: str, wanted: set[tuple[str, str]]) -> dict[str, ExistingAlarm]:
        """Owned and described alarms, and every composite (whose rules may name ours);
        per-instance alarms are paged past, not kept."""
        found: dict[str, ExistingAlarm] = {}
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "AlarmNamePrefix": "spawn-",
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
                "MaxRecords": 100,
            }
            if token:
                request["NextToken"] = token
            page = self._cloudwatch(region).describe_alarms(**request)
            for metric_alarm in page.get("MetricAlarms", []):
                if owns(metric_alarm) or (region, metric_alarm["AlarmName"]) in wanted:
                    found[metric_alarm["AlarmName"]] = ExistingAlarm(metric_alarm)
            for composite in page.get("CompositeAlarms", []):
                found[composite["AlarmName"]] = ExistingAlarm(composite, composite=True)
            token = page.get("NextToken")
            if not token:
                return found

    def _queries(self) -> list[Mapping[str, Any]]:
        return list(
            self._pages(
                self.logs,
                "describe_query_definitions",
                "queryDefinitions",
                "nextToken",
                queryDefinitionNamePrefix=QUERY_PREFIX,
                maxResults=1000,
            )
        )

    def _detectors(self, region: str) -> Iterator[Mapping[str, Any]]:
        yield from self._pages(
            self._cloudwatch(region),
            "describe_anomaly_detectors",
            "AnomalyDetectors",
            "NextToken",
            MaxResults=100,
        )

    @staticmethod
    def _pages(client: Any, method: str, key: str, token_key: str, **request: Any) -> Iterator[Any]:
        """Follow a read's continuation token through every page."""
        token: str | None = None
        while True:
            page = getattr(client, method)(**request, **({token_key: token} if token else {}))
            yield from page.get(key, [])
            token = page.get(token_key)
            if not token:
                return

    # Writes ---------------------------------------------------------------------------

    def apply(self, steps: Plan) -> SetupReport:
        """Make the plan's calls in order; a failure is logged and the rest still runs."""
        report = SetupReport(held=list(steps.held))
        failed_alarms: set[str] = set()
        for call in steps.calls:
            if call.operation in self.skip:
                report.skipped[call.operation] += 1
                continue
            if call.operation == "PutCompositeAlarm":
                missing = failed_alarms.intersection(_children(call))
                if missing:
                    report.failed.append(
                        f"{call.operation} {call.subject}: children {sorted(missing)} failed"
                    )
                    continue
            try:
                self._call(call)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "?")
                logger.error(
                    "console setup call failed",
                    extra={"operation": call.operation, "subject": call.subject, "code": code},
                )
                report.failed.append(f"{call.operation} {call.subject}: {code}")
                if call.operation == "PutMetricAlarm":
                    failed_alarms.add(call.subject)
                continue
            report.writes[call.operation] += 1
        for name in report.held:
            logger.warning("alarm kept: a composite alarm still names it", extra={"alarm": name})
        # A run that changed nothing (most minutes' array check) stays quiet.
        level = logging.INFO if report.write_count or report.failed else logging.DEBUG
        logger.log(level, "console setup", extra=report.summary())
        if report.failed:
            raise SetupIncomplete("; ".join(report.failed))
        return report

    def _call(self, call: Call) -> None:
        client = (
            self.logs if call.target == LOGS else self._cloudwatch(call.target.split(":", 1)[1])
        )
        if call.operation == "DeleteAlarms":
            self.alarm_delete_limiter.acquire()
        elif call.operation in ALARM_WRITES:
            self.alarm_limiter.acquire()
        try:
            getattr(client, xform_name(call.operation))(**call.params)
        except ClientError as exc:
            # A delete whose target went meanwhile is done; deleting the rest one by
            # one keeps one missing name from blocking the others.
            code = exc.response.get("Error", {}).get("Code")
            if call.operation not in ("DeleteAlarms", "DeleteDashboards") or code not in NOT_FOUND:
                raise
            key = "AlarmNames" if call.operation == "DeleteAlarms" else "DashboardNames"
            method = getattr(client, xform_name(call.operation))
            for name in call.params[key]:
                _ignore_not_found(method, {key: [name]})

    def _say_once_about_limits(self) -> None:
        """One log line per process for what this deployment cannot have."""
        if self.skip and "skip" not in self._said:
            self._said.add("skip")
            logger.warning(
                "this endpoint lacks some CloudWatch APIs: composite alarms, anomaly "
                "detectors and saved queries are not created here",
                extra={"skipped_calls": sorted(self.skip)},
            )
        if (
            self.region != BILLING_REGION
            and self.deployment.topics.billing is None
            and "billing" not in self._said
        ):
            self._said.add("billing")
            logger.warning(
                "billing alarms live in us-east-1 and can only notify a topic there: set "
                "BILLING_ALARM_TOPIC to one, or they alarm silently",
                extra={"region": self.region},
            )


def _children(call: Call) -> list[str]:
    return list(children_of(str(call.params.get("AlarmRule", ""))))


def _ignore_not_found(method: Callable[..., Any], request: Mapping[str, Any]) -> None:
    try:
        method(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in NOT_FOUND:
            raise
