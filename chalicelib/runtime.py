"""Process-wide wiring for the Lambda handlers: settings, logger, clients, services.

Everything is built on first use and kept for warm invocations. Tests and the local
stack's tests build their own objects instead of using these.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from chalicelib.alarms import AlarmStore
from chalicelib.alarms.budget import AccountBudget
from chalicelib.alarms.fleet_query import FleetQueryAlarms
from chalicelib.alarms.modes import AlarmModes, TelemetryEnrichment
from chalicelib.alerts import AlertPublisher
from chalicelib.api_arrays import ArraysDeps
from chalicelib.api_history import HistoryDeps
from chalicelib.clients import BILLING_REGION, Clients
from chalicelib.console.alarms import Topics
from chalicelib.console.description import Deployment
from chalicelib.console.setup import ConsoleSetup
from chalicelib.fleet import FleetHealth
from chalicelib.history import HistoryStore
from chalicelib.instances import Registry
from chalicelib.interruptions import Interruptions
from chalicelib.lifecycle import Lifecycle
from chalicelib.notifications import AlertHistory, Notifications
from chalicelib.settings import Settings, get_settings
from chalicelib.stats import Stats
from chalicelib.summaries import ProgressAggregator, ProgressRows, SummaryStore

SERVICE = "spawn-fleet-monitor"
logger = Logger(service=SERVICE)
# This package's module loggers write structured JSON through the same formatter.
copy_config_to_registered_loggers(
    source_logger=logger,
    include={name for name in logging.root.manager.loggerDict if name.startswith("chalicelib")},
)


def settings() -> Settings:
    return get_settings()


@cache
def clients() -> Clients:
    return Clients()


@cache
def registry() -> Registry:
    return Registry(clients().dynamodb, settings().instances_table)


@cache
def stats() -> Stats:
    return Stats(clients().dynamodb, settings().stats_table)


@cache
def alarm_budget(operation: str) -> AccountBudget:
    """The account-wide budget of one alarm API, shared by every writer in every process
    (lifecycle copies, reconciler, console setup, mode switches)."""
    config = settings()
    return AccountBudget(clients().dynamodb, config.stats_table, operation, config.alarm_api_tps)


@cache
def alarm_store() -> AlarmStore:
    config = settings()
    return AlarmStore(
        clients().cloudwatch,
        topic_arn=clients().topic_arn(config.alerts_topic),
        region=clients().region,
        recover=config.enable_recover_action,
        put_limiter=alarm_budget("PutMetricAlarm"),
        delete_limiter=alarm_budget("DeleteAlarms"),
    )


@cache
def alarm_modes() -> AlarmModes:
    config = settings()
    fleet_alarms = FleetQueryAlarms(
        clients().cloudwatch,
        config,
        topic_arn=clients().topic_arn(config.alerts_topic),
        region=clients().region,
        recover=config.enable_recover_action,
        put_limiter=alarm_budget("PutMetricAlarm"),
        delete_limiter=alarm_budget("DeleteAlarms"),
        contributors_api="DescribeAlarmContributors" not in config.console_skip_calls,
    )
    # The local stack's moto has no observabilityadmin API: it lists the call as skipped.
    checkable = "GetTelemetryEnrichmentStatus" not in config.console_skip_calls
    telemetry = TelemetryEnrichment(
        clients().observabilityadmin if checkable else None, region=clients().region
    )
    return AlarmModes(config.alarm_mode, fleet_alarms, telemetry, ec2=clients().ec2)


@cache
def alerts() -> AlertPublisher:
    config = settings()
    return AlertPublisher(
        clients().sns,
        alerts_topic_arn=clients().topic_arn(config.alerts_topic),
        critical_topic_arn=clients().topic_arn(config.critical_topic),
    )


@cache
def progress_rows() -> ProgressRows:
    return ProgressRows(clients().dynamodb, settings().progress_table)


@cache
def lifecycle() -> Lifecycle:
    return Lifecycle(
        settings(),
        clients().ec2,
        registry(),
        alarm_store(),
        stats(),
        progress_rows(),
        alarm_modes(),
    )


@cache
def interruptions() -> Interruptions:
    return Interruptions(settings(), clients().dynamodb, clients().ec2, registry(), alerts())


@cache
def history() -> AlertHistory:
    config = settings()
    return AlertHistory(
        clients().dynamodb,
        config.alert_history_table,
        timedelta(days=config.alert_retention_days),
    )


@cache
def notifications() -> Notifications:
    return Notifications(registry(), history())


@cache
def fleet() -> FleetHealth:
    config = settings()
    return FleetHealth(registry(), stats(), alerts(), threshold=config.unhealthy_percent_threshold)


@cache
def summary_store() -> SummaryStore:
    return SummaryStore(clients().dynamodb, settings().arrays_table)


@cache
def progress() -> ProgressAggregator:
    return ProgressAggregator(
        clients().dynamodb,
        summary_store(),
        settings(),
        alerts(),
        stats().array_info,
        history=array_history(),
        ec2=clients().ec2,
        registry=registry(),
    )


@cache
def array_history() -> HistoryStore:
    return HistoryStore(clients().dynamodb, settings().stats_table)


@cache
def arrays_deps() -> ArraysDeps:
    config = settings()
    return ArraysDeps(
        summary_store(),
        clients().dynamodb,
        config,
        clients().secret(config.cursor_secret_id).encode(),
        stats(),
    )


@cache
def history_deps() -> HistoryDeps:
    return HistoryDeps(array_history(), arrays_deps())


@cache
def console() -> ConsoleSetup:
    # One per process, like every client here: what it says once, it says once.
    config = settings()
    aws = clients()
    billing = None if config.billing_alarm_topic == "auto" else config.billing_alarm_topic
    topics = Topics(
        alerts=aws.topic_arn(config.alerts_topic),
        critical=aws.topic_arn(config.critical_topic),
        billing=billing,
    )
    return ConsoleSetup(
        config,
        Deployment(aws.region, aws.account_id, topics),
        {aws.region: aws.cloudwatch, BILLING_REGION: aws.billing_cloudwatch},
        aws.logs,
        aws.dynamodb,
        # Alarm writes share the account's quota with every other alarm writer.
        alarm_limiter=alarm_budget("PutMetricAlarm"),
        alarm_delete_limiter=alarm_budget("DeleteAlarms"),
    )
