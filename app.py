"""spawn-fleet-monitor: wiring of event sources and routes. Logic lives in chalicelib."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, ConvertToMiddleware, Rate, SNSEvent, SQSEvent

from chalicelib.alarms.fleet_query import FLEET_ALARM_NAMES
from chalicelib.alerts.notifications import CONTRIBUTOR_CHANGE
from chalicelib.api.arrays import arrays_api
from chalicelib.api.capacity import capacity_api
from chalicelib.api.fleet import api
from chalicelib.api.history import history_api
from chalicelib.api.logs import logs_api
from chalicelib.container import Container, current, install
from chalicelib.core.observability import configure_logging, logger
from chalicelib.fleet.events import REBALANCE, SPOT_WARNING, MalformedEvent
from chalicelib.fleet.launch_events import CLOUDTRAIL_CALL, LAUNCH_CALLS
from chalicelib.fleet.lifecycle import Message

install(Container())
settings = current().settings
log = logger
configure_logging()
app = Chalice(app_name="spawn-fleet-monitor")
# Every log line of every function carries the cold-start flag and the request id.
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context))
app.register_blueprint(api)
app.register_blueprint(arrays_api)
app.register_blueprint(history_api)
app.register_blueprint(capacity_api)
app.register_blueprint(logs_api)


# EventBridge → SQS (infra/resources.json, rule spawn-ec2-lifecycle) → here, in batches,
# so tag reads and alarm deletes are batched and alarm calls paced under the quota.
@app.on_sqs_message(
    queue=settings.lifecycle_queue,
    batch_size=100,
    maximum_batching_window_in_seconds=20,
    maximum_concurrency=settings.lifecycle_max_concurrency,
    name="lifecycle",
)
def on_instance_state_change(event: SQSEvent) -> dict[str, Any]:
    messages = [Message(record.to_dict()["messageId"], record.body) for record in event]
    outcome = current().lifecycle.handle(messages)
    log.info("lifecycle batch", extra={**outcome.__dict__, "failed": len(outcome.failed)})
    return outcome.batch_item_failures()


@app.schedule(Rate(15, unit=Rate.MINUTES), name="reconcile")
def reconcile_alarms(event: Any) -> None:
    remaining = event.context.get_remaining_time_in_millis() / 1000
    # Listing and registry work need time too; the rest is left to the next run. Launches
    # still queued for the lifecycle are left to it (the grace period).
    current().reconcile(budget_seconds=remaining * 0.7)


@app.on_cw_event({"source": ["aws.ec2"], "detail-type": [SPOT_WARNING]}, name="spot_interruption")
def on_spot_interruption(event: CloudWatchEvent) -> None:
    try:
        current().interruptions.on_warning(event.to_dict())
    except MalformedEvent as exc:
        # Retrying cannot fix the event: log why (not the event itself) and stop.
        log.error("malformed spot interruption warning", extra={"reason": str(exc)})


@app.on_cw_event({"source": ["aws.ec2"], "detail-type": [REBALANCE]}, name="rebalance")
def on_rebalance_recommendation(event: CloudWatchEvent) -> None:
    try:
        current().interruptions.on_rebalance(event.to_dict())
    except MalformedEvent as exc:
        log.error("malformed rebalance recommendation", extra={"reason": str(exc)})


# Failed launch calls, from CloudTrail (needs a trail logging management events; SPEC §15).
@app.on_cw_event(
    {
        "source": ["aws.ec2"],
        "detail-type": [CLOUDTRAIL_CALL],
        "detail": {"eventName": list(LAUNCH_CALLS), "errorCode": [{"exists": True}]},
    },
    name="launch_failures",
)
def on_launch_failure(event: CloudWatchEvent) -> None:
    current().launch_failures.on_event(event.to_dict())


@app.on_sns_message(topic=settings.alerts_topic, name="alert_notifications")
def on_alert_topic(event: SNSEvent) -> None:
    _notification(event)


@app.on_sns_message(topic=settings.critical_topic, name="critical_notifications")
def on_critical_topic(event: SNSEvent) -> None:
    _notification(event)


def _notification(event: SNSEvent) -> None:
    record = event.to_dict()["Records"][0]["Sns"]
    outcome = current().notifications.handle(event.message, record.get("TopicArn", ""))
    log.info("alert topic message", extra={"outcome": outcome})


# ALARM_MODE=fleet-query: each instance's check is a contributor of a query alarm; its
# state changes come as EventBridge events (and as SNS notifications, handled above).
@app.on_cw_event(
    {
        "source": ["aws.cloudwatch"],
        "detail-type": [CONTRIBUTOR_CHANGE],
        "detail": {"alarmName": sorted(FLEET_ALARM_NAMES.values())},
    },
    name="alarm_contributors",
)
def on_alarm_contributor(event: CloudWatchEvent) -> None:
    outcome = current().notifications.handle_contributor_event(event.to_dict())
    log.info("alarm contributor event", extra={"outcome": outcome})


def _alone(name: str, event: Any) -> AbstractContextManager[bool]:
    """Whether this run of a one-minute schedule holds its lease: a slow run must not
    overlap the next (both would send the same alert). No run outlives its timeout."""
    return (
        current().schedule_lease(name, event.context.get_remaining_time_in_millis() / 1000).held()
    )


@app.schedule(Rate(1, unit=Rate.MINUTES), name="fleet_tick")
def fleet_tick(event: Any) -> None:
    with _alone("fleet_tick", event) as mine:
        if mine:
            current().fleet_health.tick()
            current().launch_failures.send_alerts()


# The console (dashboards, fleet alarms, log groups, filters, saved queries): all of it
# every 6 hours, so drift heals, and once on deploy (`python -m tools.console setup`).
@app.schedule(Rate(6, unit=Rate.HOURS), name="setup")
def setup_console(event: Any) -> dict[str, Any]:
    # The alarm mode first: its precondition is reported, and the query alarms exist
    # before anything stops putting per-instance alarms.
    modes = current().alarm_modes.prepare()
    return {**current().console.run(current().now()).summary(), **modes}


# New arrays get their dashboard within a minute; finished ones lose it after retention.
@app.schedule(Rate(1, unit=Rate.MINUTES), name="array_dashboards")
def array_dashboards(event: Any) -> None:
    with _alone("array_dashboards", event) as mine:
        if mine:
            current().console.sync_array_dashboards(current().now())


# Cost Explorer's figures for finished arrays (SPEC §14): CE bills each request and
# updates about daily, so once a day, a bounded number of requests.
@app.schedule(Rate(1, unit=Rate.DAYS), name="billed_costs")
def billed_costs(event: Any) -> None:
    with _alone("billed_costs", event) as mine:
        if mine:
            report = current().billed_costs.run(current().now())
            log.info("billed costs", extra=report.__dict__)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="progress_tick")
def progress_tick(event: Any) -> None:
    with _alone("progress_tick", event) as mine:
        if mine:
            report = current().progress.tick(current().now())
            log.info("progress tick", extra=report.__dict__)


# Driven by the progress table's stream: the event source mapping is declared in
# infra/resources.json (ProgressStreamMapping), as Chalice needs a literal stream ARN.
@app.lambda_function(name="progress_stream")
def on_progress_rows(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return current().progress.handle_stream(event)
