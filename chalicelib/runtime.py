"""Process-wide wiring for the Lambda handlers: settings, logger, clients, services.

Everything is built on first use and kept for warm invocations. Tests and the local
stack build their own objects instead of using these.
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from chalicelib.alarms import AlarmStore
from chalicelib.alerts import AlertPublisher
from chalicelib.clients import Clients
from chalicelib.instances import Registry
from chalicelib.lifecycle import Lifecycle
from chalicelib.pacing import RateLimiter
from chalicelib.settings import Settings, get_settings

SERVICE = "spawn-fleet-monitor"
logger = Logger(service=SERVICE)
# Module loggers (chalicelib.*) write structured JSON through the same formatter.
copy_config_to_registered_loggers(source_logger=logger)


def settings() -> Settings:
    return get_settings()


@cache
def clients() -> Clients:
    return Clients()


@cache
def registry() -> Registry:
    return Registry(clients().dynamodb, settings().instances_table)


@cache
def alarm_store() -> AlarmStore:
    config = settings()
    # Lambda may run this many copies at once; together they stay under the quota.
    rate = config.alarm_api_tps / config.lifecycle_max_concurrency
    return AlarmStore(
        clients().cloudwatch,
        topic_arn=clients().topic_arn(config.alerts_topic),
        region=clients().region,
        recover=config.enable_recover_action,
        put_limiter=RateLimiter(rate),
        delete_limiter=RateLimiter(rate),
    )


@cache
def lifecycle() -> Lifecycle:
    return Lifecycle(settings(), clients().ec2, registry(), alarm_store())


@cache
def alerts() -> AlertPublisher:
    config = settings()
    return AlertPublisher(
        clients().sns,
        alerts_topic_arn=clients().topic_arn(config.alerts_topic),
        critical_topic_arn=clients().topic_arn(config.critical_topic),
    )
