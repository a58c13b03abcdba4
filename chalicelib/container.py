"""The one wiring container: the object graph of every handler, built once per process.

`Container(settings, clients, clock=..., sleep=...)` holds the services as lazily built
attributes, so a warm invocation reuses them. `app.py` installs one built from the
environment; routes and handlers read it through `current()`. Tests, the local stack,
chaos and bench build theirs from this class with the fakes they need (a session on
moto, a virtual clock, a local pacer). It is the composition root: it imports the
capabilities, and none of them imports it except the routes' accessor (no circle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property

from chalicelib.alarms.budget import AccountBudget
from chalicelib.alarms.fleet_query import FleetQueryAlarms
from chalicelib.alarms.modes import AlarmModes, TelemetryEnrichment
from chalicelib.alarms.per_instance import AlarmStore
from chalicelib.alerts.feed import AlertHistory
from chalicelib.alerts.notifications import Notifications
from chalicelib.alerts.publish import AlertPublisher
from chalicelib.api.deps import ArraysDeps, HistoryDeps, LogsDeps
from chalicelib.console.alarms import Topics
from chalicelib.console.description import Deployment
from chalicelib.console.setup import ConsoleSetup
from chalicelib.core.clients import BILLING_REGION, Clients
from chalicelib.core.pacing import Pacer
from chalicelib.core.schedules import ScheduleLease
from chalicelib.core.settings import Settings, get_settings
from chalicelib.cost.prices import PriceBook
from chalicelib.cost.runs import RunLog
from chalicelib.cost.store import CostStore, CostTick
from chalicelib.fleet.capacity import CapacityLedger
from chalicelib.fleet.health import FleetHealth
from chalicelib.fleet.interruptions import Interruptions
from chalicelib.fleet.launch_failures import LaunchFailures, SubnetZones
from chalicelib.fleet.lifecycle import Lifecycle, queue_backlog
from chalicelib.fleet.reconcile import ReconcileReport, reconcile
from chalicelib.fleet.registry import Registry
from chalicelib.fleet.stats import Stats
from chalicelib.progress.aggregator import ProgressAggregator
from chalicelib.progress.billed import BilledCosts
from chalicelib.progress.history import HistoryStore
from chalicelib.progress.store import SummaryStore
from chalicelib.progress.workers import ProgressRows
from chalicelib.worker_logs.reader import WorkerLogs

# Alarm API name -> its pacer; default: the account-wide budget in the stats table.
PacerFactory = Callable[[str], Pacer]


class Container:
    """Every service the handlers use, each built on first use and then kept.

    Args:
        settings: the stage's settings (default: read from the environment).
        clients: where AWS calls go (default: `Clients()`, the environment's).
        clock: epoch seconds (default `time.time`); every service's notion of now.
        sleep: how services wait (default `time.sleep`).
        pacer: the pacer of one alarm API by name (default: `AccountBudget`, shared by
            every writer in every process of the account).

    Example:
        >>> c = Container(Settings(), Clients(session), clock=fake.time, sleep=fake.sleep)
        >>> c.lifecycle.handle(messages)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        clients: Clients | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        pacer: PacerFactory | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.clients = clients or Clients()
        self.clock = clock
        self.sleep = sleep
        self._pacer = pacer
        self._pacers: dict[str, Pacer] = {}

    def now(self) -> datetime:
        """The clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- core ---------------------------------------------------------------------

    def schedule_lease(self, name: str, hold_seconds: float) -> ScheduleLease:
        """The lease that keeps runs of the scheduled function `name` from overlapping,
        held at most `hold_seconds` (what is left of the run's timeout)."""
        return ScheduleLease(
            self.clients.dynamodb,
            self.settings.stats_table,
            name,
            hold_seconds,
            clock=self.clock,
        )

    def alarm_pacer(self, operation: str) -> Pacer:
        """The one pacer of an alarm API (`PutMetricAlarm`, `DeleteAlarms`) in this
        process, shared by the lifecycle, the reconciler, setup and the mode switch."""
        if operation not in self._pacers:
            if self._pacer is not None:
                self._pacers[operation] = self._pacer(operation)
            else:
                self._pacers[operation] = AccountBudget(
                    self.clients.dynamodb,
                    self.settings.stats_table,
                    operation,
                    self.settings.alarm_api_tps,
                    clock=self.clock,
                    sleep=self.sleep,
                )
        return self._pacers[operation]

    @cached_property
    def alerts_topic_arn(self) -> str:
        return self.clients.topic_arn(self.settings.alerts_topic)

    @cached_property
    def critical_topic_arn(self) -> str:
        return self.clients.topic_arn(self.settings.critical_topic)

    def cursor_secret(self) -> bytes:
        """The cursors' HMAC key, re-read after `SECRET_MAX_AGE` (rotation needs no
        cold start)."""
        return self.clients.secret(self.settings.cursor_secret_id).encode()

    # --- fleet --------------------------------------------------------------------

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.clients.dynamodb, self.settings.instances_table, clock=self.clock)

    @cached_property
    def stats(self) -> Stats:
        return Stats(self.clients.dynamodb, self.settings.stats_table)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            self.settings,
            self.clients.ec2,
            self.registry,
            self.alarm_store,
            self.stats,
            self.progress_rows,
            self.alarm_modes,
            capacity=self.capacity,
            runs=self.run_log,
        )

    @cached_property
    def interruptions(self) -> Interruptions:
        return Interruptions(
            self.settings,
            self.clients.dynamodb,
            self.clients.ec2,
            self.registry,
            self.alerts,
            clock=self.now,
            sleep=self.sleep,
            capacity=self.capacity,
        )

    @cached_property
    def launch_failures(self) -> LaunchFailures:
        """Failed launch calls (SPEC §15): counts, reads and the rolled-up alert."""
        return LaunchFailures(
            self.clients.dynamodb,
            self.settings.stats_table,
            self.alerts,
            SubnetZones(self.clients.ec2),
            count_untagged=self.settings.count_untagged_launch_failures,
            alert_delay_seconds=self.settings.launch_failure_alert_delay_seconds,
            clock=self.now,
            sleep=self.sleep,
        )

    @cached_property
    def fleet_health(self) -> FleetHealth:
        return FleetHealth(
            self.registry,
            self.stats,
            self.alerts,
            threshold=self.settings.unhealthy_percent_threshold,
            clock=self.now,
            capacity=self.capacity,
            costs=self.cost_tick,
        )

    @cached_property
    def capacity(self) -> CapacityLedger:
        """Instance-hours, interruptions and launch failures by type, zone and day."""
        return CapacityLedger(
            self.clients.dynamodb,
            self.settings.stats_table,
            self.registry,
            clock=self.now,
            sleep=self.sleep,
        )

    def reconcile(self, budget_seconds: float, backlog: int | None = None) -> ReconcileReport:
        """One run of the reconciler within `budget_seconds`; `backlog` is the lifecycle
        queue's depth (None: read it from SQS, as the deployed function does)."""
        if backlog is None:
            backlog = queue_backlog(self.clients.sqs, self.settings.lifecycle_queue)
        return self.reconcile_with(budget_seconds, backlog)

    def reconcile_with(self, budget_seconds: float, backlog: int | None) -> ReconcileReport:
        """`reconcile` with the grace period's `backlog` given (None: no grace)."""
        return reconcile(
            settings=self.settings,
            ec2=self.clients.ec2,
            registry=self.registry,
            alarms=self.alarm_store,
            now=self.now(),
            budget_seconds=budget_seconds,
            workers=self.progress_rows,
            backlog=backlog,
            modes=self.alarm_modes,
            arrays=self.stats,
            runs=self.run_log,
        )

    # --- cost ---------------------------------------------------------------------

    @cached_property
    def run_log(self) -> RunLog:
        return RunLog(self.clients.dynamodb, self.settings.instances_table)

    @cached_property
    def price_book(self) -> PriceBook:
        api = self.settings.prices_from == "api"
        return PriceBook(
            self.clients.region,
            pricing=self.clients.pricing(self.settings.pricing_region) if api else None,
            ec2=self.clients.ec2 if api else None,
            dynamodb=self.clients.dynamodb,
            table=self.settings.stats_table,
            clock=self.clock,
        )

    @cached_property
    def cost_store(self) -> CostStore:
        return CostStore(self.clients.dynamodb, self.settings.stats_table)

    @cached_property
    def cost_tick(self) -> CostTick:
        return CostTick(self.cost_store, self.price_book, self.settings.array_budget_usd or None)

    # --- alarms -------------------------------------------------------------------

    @cached_property
    def alarm_store(self) -> AlarmStore:
        return AlarmStore(
            self.clients.cloudwatch,
            topic_arn=self.alerts_topic_arn,
            region=self.clients.region,
            recover=self.settings.enable_recover_action,
            put_limiter=self.alarm_pacer("PutMetricAlarm"),
            delete_limiter=self.alarm_pacer("DeleteAlarms"),
        )

    @cached_property
    def alarm_modes(self) -> AlarmModes:
        config = self.settings
        fleet_alarms = FleetQueryAlarms(
            self.clients.cloudwatch,
            config,
            topic_arn=self.alerts_topic_arn,
            region=self.clients.region,
            recover=config.enable_recover_action,
            put_limiter=self.alarm_pacer("PutMetricAlarm"),
            delete_limiter=self.alarm_pacer("DeleteAlarms"),
            contributors_api="DescribeAlarmContributors" not in config.console_skip_calls,
        )
        # The local stack's moto has no observabilityadmin API: it lists the call as skipped.
        checkable = "GetTelemetryEnrichmentStatus" not in config.console_skip_calls
        telemetry = TelemetryEnrichment(
            self.clients.observabilityadmin if checkable else None, region=self.clients.region
        )
        return AlarmModes(
            config.alarm_mode,
            fleet_alarms,
            telemetry,
            clock=self.clock,
            ec2=self.clients.ec2,
            now=self.now,
        )

    # --- alerts -------------------------------------------------------------------

    @cached_property
    def alerts(self) -> AlertPublisher:
        return AlertPublisher(
            self.clients.sns,
            alerts_topic_arn=self.alerts_topic_arn,
            critical_topic_arn=self.critical_topic_arn,
            feed=self.alert_feed,
            array_owner=self._array_owner,
        )

    def _array_owner(self, array_id: str) -> str | None:
        record = self.stats.array_record(array_id)
        return None if record is None else record.owner

    @cached_property
    def alert_feed(self) -> AlertHistory:
        """The alert history (`GET /alerts`), not an array's history (`array_history`)."""
        return AlertHistory(
            self.clients.dynamodb,
            self.settings.alert_history_table,
            timedelta(days=self.settings.alert_retention_days),
            clock=self.now,
            critical_topic=self.settings.critical_topic,
        )

    @cached_property
    def notifications(self) -> Notifications:
        return Notifications(self.registry, self.alert_feed)

    # --- progress -----------------------------------------------------------------

    @cached_property
    def progress_rows(self) -> ProgressRows:
        return ProgressRows(self.clients.dynamodb, self.settings.progress_table)

    @cached_property
    def summary_store(self) -> SummaryStore:
        return SummaryStore(self.clients.dynamodb, self.settings.arrays_table)

    @cached_property
    def array_history(self) -> HistoryStore:
        """Each array's counts over time (`GET /arrays/{id}/history`)."""
        return HistoryStore(self.clients.dynamodb, self.settings.stats_table)

    @cached_property
    def billed_costs(self) -> BilledCosts:
        """Cost Explorer's figure for finished arrays (the daily `billed_costs` job)."""
        return BilledCosts(
            self.clients.ce,
            self.summary_store,
            self.stats,
            self.stats.array_info,
            lookback_days=self.settings.billed_lookback_days,
            max_calls=self.settings.billed_max_calls,
            stall_after=self.settings.stall_after_seconds,
            costs=self.cost_store.array_costs,
        )

    @cached_property
    def progress(self) -> ProgressAggregator:
        return ProgressAggregator(
            self.clients.dynamodb,
            self.summary_store,
            self.settings,
            self.alerts,
            self.stats.array_info,
            clock=self.now,
            history=self.array_history,
            ec2=self.clients.ec2,
            registry=self.registry,
            costs=self.cost_store,
        )

    # --- api ----------------------------------------------------------------------

    @property
    def arrays_deps(self) -> ArraysDeps:
        # Built per request: the cursor secret may have rotated (it is cached, not kept).
        return ArraysDeps(
            self.summary_store,
            self.clients.dynamodb,
            self.settings,
            self.cursor_secret(),
            self.stats,
            self.now,
            self.launch_failures,
            costs=self.cost_store,
            billed=self.billed_costs.stored,
        )

    @property
    def history_deps(self) -> HistoryDeps:
        return HistoryDeps(self.array_history, self.arrays_deps)

    @cached_property
    def worker_logs(self) -> WorkerLogs:
        """Bounded reads of the workers' log group (SPEC §16)."""
        return WorkerLogs(self.clients.logs)

    @property
    def logs_deps(self) -> LogsDeps:
        return LogsDeps(self.arrays_deps, self.progress_rows, self.worker_logs)

    # --- console ------------------------------------------------------------------

    @cached_property
    def console(self) -> ConsoleSetup:
        # One per process, like every client here: what it says once, it says once.
        config, aws = self.settings, self.clients
        billing = None if config.billing_alarm_topic == "auto" else config.billing_alarm_topic
        topics = Topics(
            alerts=self.alerts_topic_arn, critical=self.critical_topic_arn, billing=billing
        )
        return ConsoleSetup(
            config,
            Deployment(aws.region, aws.account_id, topics),
            {aws.region: aws.cloudwatch, BILLING_REGION: aws.billing_cloudwatch},
            aws.logs,
            aws.dynamodb,
            # Alarm writes share the account's quota with every other alarm writer.
            alarm_limiter=self.alarm_pacer("PutMetricAlarm"),
            alarm_delete_limiter=self.alarm_pacer("DeleteAlarms"),
        )


_installed: Container | None = None


def install(container: Container) -> Container:
    """Make `container` the process's (`app.py` at import; tests with their fakes)."""
    global _installed
    _installed = container
    return container


def current() -> Container:
    """The installed container: the one way routes and handlers reach the wiring."""
    if _installed is None:
        raise RuntimeError("no container installed: app.py installs one at import")
    return _installed
