"""What moto holds once a replay settled, read into `chaos.invariants.Observed`.

Kept apart from the replay (`chaos.replay`), which plays the world and delivers its
events: this module only reads, with the world's own unfaulted clients.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from chalicelib.alarms.fleet_query import FLEET_ALARM_NAMES
from chalicelib.alarms.per_instance import AlarmStore, instance_of
from chalicelib.alerts.feed import FEED
from chalicelib.alerts.notifications import parse_time
from chalicelib.contract.rows import iso
from chalicelib.fleet.registry import Registry
from chalicelib.fleet.stats import Stats
from chalicelib.progress.history import HistoryStore
from chalicelib.progress.store import SummaryStore
from chalicelib.progress.summary import recount, sequence_key
from chalicelib.progress.workers import ProgressRows
from chaos.history import NOTICE_SECONDS
from chaos.invariants import Observed

if TYPE_CHECKING:
    from chaos.replay import World


def _running_managed(world: World) -> set[str]:
    """Running instances that SPEC §2 says are managed, from EC2's own listing."""
    found = set()
    pages = world.aws.ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                managed = tags.get("spawn:managed") == "true" or tags.get("spawn") == "true"
                if managed and tags.get("spawn:monitoring") != "off":
                    found.add(instance["InstanceId"])
    return found


def _processed(world: World) -> set[str]:
    """The delivered events whose effect is in moto's state."""
    ledger, settings = world.ledger, world.settings
    registry = Registry(world.aws.dynamodb, settings.instances_table)
    instances = {e["instance_id"] for e in ledger.events.values() if "instance_id" in e}
    rows = registry.get_many(instances)
    summaries = SummaryStore(world.aws.dynamodb, settings.arrays_table)
    arrays = {a.array_id: summaries.get(a.array_id) for a in world.history.arrays}
    history: set[str] = set()
    pages = world.aws.dynamodb.get_paginator("query").paginate(
        TableName=settings.alert_history_table,
        KeyConditionExpression="feed = :feed",
        ExpressionAttributeValues={":feed": {"S": FEED}},
    )
    for page in pages:
        history.update(item["seen_at"]["S"] for item in page["Items"])
    done = set()
    for origin in ledger.delivered:
        event = ledger.events[origin]
        kind = event["kind"]
        row = rows.get(event.get("instance_id", ""), {})
        if kind == "state":
            ok = row.get("state") == "terminated" or int(row.get("last_event_ms", 0)) >= event["ms"]
        elif kind in ("warning", "rebalance") and not event["managed"]:
            ok = origin in ledger.completed
        elif kind == "warning":
            ok = int(row.get("interrupted_ms", 0)) >= event["ms"] - NOTICE_SECONDS * 1000
        elif kind == "rebalance":
            ok = "rebalance_ms" in row
        elif kind == "alarm":
            changed = iso(parse_time(event["changed_at"]))
            ok = f"{changed}#{event['alarm']}#{event['state']}" in history
        else:
            summary = arrays.get(event["array_id"])
            mark = None if summary is None else summary.watermarks.get(event["shard"])
            ok = mark is not None and mark.sequence >= sequence_key(event["sequence"])
        if ok:
            done.add(origin)
    return done


def _failed_events(world: World) -> dict[str, str]:
    """Everything in the failure queues, by origin, with its reason."""
    sqs = world.session.client("sqs")
    kept: dict[str, str] = {}
    for queue in ("LifecycleDeadLetterQueue", "FailedEventsQueue"):
        while True:
            messages = sqs.receive_message(
                QueueUrl=world.infra.queue_urls[queue],
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                origin = json.loads(message["Body"])["origin"]
                attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
                kept[origin] = str(attributes.get("reason", {}).get("StringValue", ""))
                sqs.delete_message(
                    QueueUrl=world.infra.queue_urls[queue],
                    ReceiptHandle=message["ReceiptHandle"],
                )
    return kept


def _alerts_sent(world: World) -> list[dict[str, Any]]:
    sqs = world.session.client("sqs")
    alerts: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=world.alerts_queue, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return alerts
        for message in messages:
            body = json.loads(json.loads(message["Body"])["Message"])
            alerts.append(body)
            sqs.delete_message(QueueUrl=world.alerts_queue, ReceiptHandle=message["ReceiptHandle"])


def observe(world: World) -> Observed:
    """moto's state after the replay, with the ledger, for the invariants."""
    ledger, settings = world.ledger, world.settings
    clean_alarms = AlarmStore(world.aws.cloudwatch, topic_arn="", region="us-east-1")
    alarmed = {instance_of(name) or name for name in clean_alarms.list_names()}
    stats = Stats(world.aws.dynamodb, settings.stats_table)
    interrupted: dict[str, set[str]] = {}
    for origin in ledger.delivered:
        event = ledger.events[origin]
        if event["kind"] == "warning" and event["managed"]:
            interrupted.setdefault(event["array_id"], set()).add(event["instance_id"])
    rows = ProgressRows(world.aws.dynamodb, settings.progress_table)
    summaries = SummaryStore(world.aws.dynamodb, settings.arrays_table)
    summary_counts, recount_counts, in_table = {}, {}, {}
    for spec in world.history.arrays:
        found = rows.all(spec.array_id)
        in_table[spec.array_id] = len(found)
        recount_counts[spec.array_id] = asdict(recount(found).counts)
        summary = summaries.get(spec.array_id)
        if summary is not None:
            summary_counts[spec.array_id] = asdict(summary.counts)
    written = Counter(array_id for array_id, _ in ledger.rows_written)
    handed = ledger.malformed
    faults = Counter(ledger.faults) + Counter(world.http.injected)
    faults.update({f"malformed {k}": n for k, n in ledger.malformed_kinds.items()})
    figures: dict[str, Any] = {
        "history": (
            f"{len(world.history.arrays)} arrays, {sum(a.size for a in world.history.arrays)} "
            f"instances, {len(world.history.steps)} world steps, "
            f"{world.clock.time() - world.start:.0f} s virtual"
        ),
        "events replayed": _counts(ledger.deliveries),
        "faults injected": _counts(faults),
        "crashes by handler": _counts(ledger.crashes) or "0",
        "scheduled runs failed (crash or error; the next run goes on)": (
            _counts(ledger.failed_runs) or "0"
        ),
        "crashed right after": _counts(ledger.crash_after) or "-",
        "AWS calls by the handlers": sum(world.http.calls.values()),
        "AWS limit violations": len(world.http.limit_violations),
        "inputs rejected": sum(handed.values()),
    }
    query = set(FLEET_ALARM_NAMES.values())
    existing = world.aws.cloudwatch.describe_alarms(AlarmNames=sorted(query))["MetricAlarms"]
    history = HistoryStore(world.aws.dynamodb, settings.stats_table)
    points = {}
    for spec in world.history.arrays:
        kept = history.points(spec.array_id, None, world.clock.now())
        if kept:
            points[spec.array_id] = [
                (p.t, p.total, p.completed + p.failed + p.running + (p.lost or 0)) for p in kept
            ]
    return Observed(
        alarm_mode=settings.alarm_mode,
        query_alarms={a["AlarmName"] for a in existing},
        query_alarms_wanted=query,
        history=points,
        ended_at=int(world.clock.time()),
        alarmed=alarmed,
        running_managed=_running_managed(world),
        interruptions_by_array={
            spec.array_id: stats.array_interruptions(spec.array_id) for spec in world.history.arrays
        },
        interruptions_total=stats.interruption_totals(world.clock.now())["total"],
        interrupted_by_array=interrupted,
        summary_counts=summary_counts,
        recount_counts=recount_counts,
        rows_in_table=in_table,
        rows_written=dict(written),
        delivered=set(ledger.delivered),
        processed=_processed(world),
        destination=_failed_events(world),
        malformed_handed=dict(handed),
        logged=list(world.rejections.records),
        alerts=_alerts_sent(world),
        crashes_after_publish=ledger.crash_after["Publish"],
        figures=figures,
    )


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()) if n)
