"""spawn-fleet-monitor: wiring of event sources and routes. Logic lives in chalicelib."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Rate, SQSEvent

from chalicelib import runtime
from chalicelib.api import api
from chalicelib.lifecycle import Message
from chalicelib.reconcile import reconcile

settings = runtime.settings()
app = Chalice(app_name="spawn-fleet-monitor")
app.register_blueprint(api)


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
    outcome = runtime.lifecycle().handle(messages)
    runtime.logger.info(
        "lifecycle batch", extra={**outcome.__dict__, "failed": len(outcome.failed)}
    )
    return outcome.batch_item_failures()


@app.schedule(Rate(15, unit=Rate.MINUTES), name="reconcile")
def reconcile_alarms(event: Any) -> None:
    from datetime import UTC, datetime

    reconcile(
        settings=settings,
        ec2=runtime.clients().ec2,
        registry=runtime.registry(),
        alarms=runtime.alarm_store(),
        now=datetime.now(UTC),
    )
