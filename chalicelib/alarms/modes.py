"""Which alarm mode is in force, its precondition, and the safe switch between modes.

`ALARM_MODE` says what the operator wants; the mode *in force* is `fleet-query` only
while its precondition holds and both query alarms exist. Until then every writer
acts as in `per-instance`, so no running managed instance is ever unwatched:

- to `fleet-query`: the query alarms are created first (setup on deploy, and each
  reconcile); only once both exist does the lifecycle stop putting per-instance
  alarms and the reconciler delete them, paced, at most 100 names a call;
- back to `per-instance` (or when the precondition fails): the reconciler puts
  per-instance alarms for every running managed instance, paced, and deletes the
  query alarms only after a fresh listing shows all of them in place.

Precondition: tag filters in a Metrics Insights query match nothing until "resource
tags on telemetry" is on in the account (`observabilityadmin`
`GetTelemetryEnrichmentStatus` is `Running`). Setup reads the status, reports it, and
calls `StartTelemetryEnrichment` only when `ENABLE_TELEMETRY_ENRICHMENT` is true;
otherwise `fleet-query` does not start, and the log names the fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.alarms.fleet_query import FleetQueryAlarms

if TYPE_CHECKING:
    from mypy_boto3_observabilityadmin import CloudWatchObservabilityAdminServiceClient

logger = logging.getLogger(__name__)

ENRICHMENT_ON = "Running"
FIX = (
    "turn on resource tags on telemetry: set ENABLE_TELEMETRY_ENRICHMENT=true (setup then "
    "calls StartTelemetryEnrichment), or in the CloudWatch console, Settings > Enable "
    "resource tags on telemetry; until then the per-instance alarms stay"
)
# The lifecycle asks whether the query alarms exist at most this often per process.
QUERY_ALARMS_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Precondition:
    """Whether `fleet-query` can start: `ok`, the enrichment `status`, and what to do."""

    ok: bool
    status: str
    message: str


@dataclass
class TelemetryEnrichment:
    """Resource tags on telemetry, which tag-filtered queries need.

    Args:
        client: an `observabilityadmin` client, or None where the endpoint has no such
            API (the local stack's moto): then the check cannot be made and is reported
            as skipped, never as on.
        enable: call `StartTelemetryEnrichment` when it is off
            (`ENABLE_TELEMETRY_ENRICHMENT`).
    """

    client: CloudWatchObservabilityAdminServiceClient | None
    enable: bool = False

    def check(self) -> Precondition:
        if self.client is None:
            return Precondition(
                True,
                "unchecked",
                "this endpoint has no observabilityadmin API; tag filters assumed on",
            )
        status = self.client.get_telemetry_enrichment_status().get("Status", "Stopped")
        if status != ENRICHMENT_ON and self.enable:
            logger.info("starting resource tags on telemetry", extra={"status": status})
            status = self.client.start_telemetry_enrichment().get("Status", "Stopped")
        if status == ENRICHMENT_ON:
            return Precondition(True, status, "resource tags on telemetry are on")
        return Precondition(False, status, f"resource tags on telemetry are {status}: {FIX}")


@dataclass
class AlarmModes:
    """The mode in force and its switch (see the module docstring).

    Args:
        wanted: `ALARM_MODE`.
        fleet_alarms: the two query alarms.
        telemetry: the precondition.
        clock: monotonic seconds, for the lifecycle's cached check.
    """

    wanted: str
    fleet_alarms: FleetQueryAlarms
    telemetry: TelemetryEnrichment
    clock: Callable[[], float] = time.monotonic
    _seen_until: float = field(default=float("-inf"), init=False)

    def prepare(self) -> dict[str, object]:
        """Setup's part: check the precondition and, in `fleet-query`, make sure both
        query alarms exist. Returns what it found, for setup's summary."""
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
                "fix": FIX,
            }
        written = self.fleet_alarms.ensure()
        return {
            "alarm_mode": "fleet-query",
            "telemetry_enrichment": precondition.status,
            "query_alarms_written": written,
        }

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
