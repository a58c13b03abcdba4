"""Which alarm mode is in force, its precondition, and the safe switch between modes.

`ALARM_MODE` says what the operator wants; the mode *in force* is `fleet-query` only
while its precondition holds (resource tags on telemetry `Running`, and the query seen
to cover every running managed instance) and both query alarms exist. Until then every
writer acts as in `per-instance`, so no running managed instance is ever unwatched.
Details: docs/alarm-modes.md (the precondition, coverage, switching both ways).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.alarms.fleet_query import QUERY_SERIES_LIMIT, FleetQueryAlarms, query_selects
from chalicelib.fleet.registry import InstanceFacts, describe_managed_running

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_observabilityadmin import CloudWatchObservabilityAdminServiceClient

logger = logging.getLogger(__name__)

ENRICHMENT_ON = "Running"
# The precondition's status where the endpoint has no observabilityadmin API.
UNCHECKED = "unchecked"
# The status reported when setup may not read it.
DENIED = "AccessDenied"
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
# What enabling resource tags on telemetry needs (CloudWatch's "Resource tags for
# telemetry" page): the call itself, and what CloudWatch creates on the caller's behalf.
ENABLEMENT_ACTIONS = (
    "observabilityadmin:StartTelemetryEnrichment",
    "iam:CreateServiceLinkedRole",
    "resource-explorer-2:CreateIndex",
    "resource-explorer-2:CreateManagedView",
    "resource-explorer-2:CreateStreamingAccessForService",
)
# The lifecycle asks whether the query alarms exist at most this often per process.
QUERY_ALARMS_CHECK_SECONDS = 60.0
# EC2 publishes status checks each minute from launch; an instance running this long
# must show in the query's last `COVERAGE_WINDOW`.
COVERAGE_SETTLE = timedelta(minutes=10)
COVERAGE_WINDOW = timedelta(minutes=15)
COVERAGE_FIX = (
    "check the managed and opt-out tags on those instances and that resource tags on "
    "telemetry cover them; until the query sees them the per-instance alarms stay"
)


def enablement_command(region: str) -> str:
    """The command an administrator runs once per account and region."""
    return f"aws observabilityadmin start-telemetry-enrichment --region {region}"


def enablement_fix(region: str) -> str:
    """What to do when resource tags on telemetry are off: who runs what, with which
    permissions (the whole fix in one line, for the log and setup's summary)."""
    return (
        "resource tags on telemetry must be turned on once, by an account administrator: "
        f"`{enablement_command(region)}` (or CloudWatch console, Settings, Enable resource "
        f"tags on telemetry), as a principal allowed {', '.join(ENABLEMENT_ACTIONS)}; "
        "this system never turns it on itself. Until then the per-instance alarms stay"
    )


@dataclass(frozen=True)
class Precondition:
    """Whether `fleet-query` can start: `ok`, the enrichment `status`, and what to do."""

    ok: bool
    status: str
    message: str


@dataclass
class TelemetryEnrichment:
    """Resource tags on telemetry, which tag-filtered queries need; read, never started.

    Args:
        client: an `observabilityadmin` client, or None where the endpoint has no such
            API (the local stack's moto): then the check cannot be made and is reported
            as skipped, never as on.
        region: where the status is read, for the command in the fix.
    """

    client: CloudWatchObservabilityAdminServiceClient | None
    region: str = "us-east-1"

    def check(self) -> Precondition:
        if self.client is None:
            return Precondition(
                True,
                UNCHECKED,
                "this endpoint has no observabilityadmin API; tag filters assumed on",
            )
        fix = enablement_fix(self.region)
        try:
            status = self.client.get_telemetry_enrichment_status().get("Status", "Stopped")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in DENIED_CODES:
                raise
            # Unknown is not on: a query that might match nothing must not replace alarms.
            return Precondition(
                False,
                DENIED,
                "setup may not read resource tags on telemetry (it needs "
                f"observabilityadmin:GetTelemetryEnrichmentStatus); if they are off, {fix}",
            )
        if status == ENRICHMENT_ON:
            return Precondition(True, status, "resource tags on telemetry are on")
        return Precondition(False, status, f"resource tags on telemetry are {status}: {fix}")


@dataclass
class AlarmModes:
    """The mode in force and its switch (see the module docstring).

    Args:
        wanted: `ALARM_MODE`.
        fleet_alarms: the two query alarms.
        telemetry: the precondition.
        clock: monotonic seconds, for the lifecycle's cached check.
        ec2: for the coverage check (None skips it).
        now: the wall clock, for the coverage check.
    """

    wanted: str
    fleet_alarms: FleetQueryAlarms
    telemetry: TelemetryEnrichment
    clock: Callable[[], float] = time.monotonic
    ec2: EC2Client | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _seen_until: float = field(default=float("-inf"), init=False)

    def prepare(self, running: Mapping[str, InstanceFacts] | None = None) -> dict[str, object]:
        """Setup's part: check the precondition and the query's coverage (of `running`,
        the running managed instances, listed here when not given) and, in
        `fleet-query`, make sure both query alarms exist. Returns what it found, for
        setup's summary."""
        if self.wanted != "fleet-query":
            return {"alarm_mode": self.wanted}
        precondition = self.telemetry.check()
        if not precondition.ok:
            # The whole fix in the message: whoever reads the log needs nothing else.
            logger.error(f"ALARM_MODE=fleet-query cannot start: {precondition.message}")
            return {
                "alarm_mode": "per-instance",
                "wanted": self.wanted,
                "telemetry_enrichment": precondition.status,
                "fix": precondition.message,
            }
        if precondition.status != UNCHECKED:
            unseen = self.unseen(running)
            if unseen:
                logger.error(
                    f"ALARM_MODE=fleet-query cannot start: its query sees no series of "
                    f"{len(unseen)} running managed instance(s), e.g. "
                    f"{', '.join(unseen[:5])}; {COVERAGE_FIX}"
                )
                return {
                    "alarm_mode": "per-instance",
                    "wanted": self.wanted,
                    "telemetry_enrichment": precondition.status,
                    "unseen_instances": len(unseen),
                    "fix": COVERAGE_FIX,
                }
        written = self.fleet_alarms.ensure()
        return {
            "alarm_mode": "fleet-query",
            "telemetry_enrichment": precondition.status,
            "query_alarms_written": written,
        }

    def unseen(self, running: Mapping[str, InstanceFacts] | None = None) -> list[str]:
        """Running managed instances, settled past `COVERAGE_SETTLE`, that the status
        check's query returns no series for (none when the check cannot be made: no
        EC2 client, or the query's series limit reached)."""
        if self.ec2 is None:
            return []
        if running is None:
            running = describe_managed_running(self.ec2, self.fleet_alarms.settings)
        now = self.now()
        settings = self.fleet_alarms.settings
        # Those the query does not select keep their own alarms: not its to see.
        settled = {
            instance_id
            for instance_id, facts in running.items()
            if facts.launch_time is not None
            and datetime.fromisoformat(facts.launch_time) <= now - COVERAGE_SETTLE
            and query_selects(facts.tags, settings)
        }
        if not settled:
            return []
        seen = self.fleet_alarms.instances_seen(now - COVERAGE_WINDOW, now)
        if len(seen) >= QUERY_SERIES_LIMIT:
            return []  # the query shows failing instances first, and no more than this
        return sorted(settled - seen)

    def query_alarms_in_force(self) -> bool:
        """For the lifecycle: `fleet-query` is wanted and both query alarms exist, so
        per-instance alarm calls are not needed (a positive answer is kept a minute)."""
        if self.wanted != "fleet-query":
            return False
        now = self.clock()
        if now < self._seen_until:
            return True
        if self.fleet_alarms.all_exist():
            self._seen_until = now + QUERY_ALARMS_CHECK_SECONDS
            return True
        return False
