"""The notify queue's consumer: alerts rolled up per array and kind, criticals at once.

Signals of one array and kind within one window (`NOTIFY_WINDOW_SECONDS`, aligned to the
epoch) are counted in one stats-table bucket, `notify-bucket#{array}#{kind}#{window}`,
with counts by zone, instance type and error code; each signal is claimed once in the
same transaction, so duplicates never count twice. The bucket's first writer sends a
timer to the same queue, delayed to the window's end (the window survives a restart);
at the timer the bucket closes and becomes one `Notice`, queued once per matching
destination. Criticals go at once; `array_finished` becomes the array's report.
Details: docs/notifications.md.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.core.batching import (
    TRANSACT_BASE_SECONDS,
    TRANSACT_CAP_SECONDS,
    TRANSACTION_ATTEMPTS,
    chunked,
    conditional_check_failed,
)
from chalicelib.notify.destinations import DestinationBook
from chalicelib.notify.intake import ALARM_CHANGE, Flush, Signal, Unreadable, read_message
from chalicelib.notify.model import BREAKDOWNS, SEVERITY_ORDER, DeliveryJob, Notice

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

BUCKET_PREFIX = "notify-bucket#"
SIGNAL_PREFIX = "notify-signal#"
# A signal's claim outlives any redelivery (SQS keeps a message 4 days at most here).
CLAIM_SECONDS = 5 * 86400
BUCKET_SECONDS = 2 * 86400
# A transaction holds at most 100 items: 99 claims and the bucket.
CLAIMS_PER_TRANSACTION = 99
SQS_BATCH = 10
# Breakdown values are names (zones, types, codes): longer ones are cut to this.
VALUE_MAX = 64
# Fleet-wide and critical alerts that go out without waiting for the window.
AT_ONCE = frozenset({"critical"})
REPORT_EVENT = "array_finished"
_LABELS = {
    "spot_interruption": ("spot interruption warning", "spot interruption warnings"),
    "array_launch_failures": ("launch failure", "launch failures"),
    "workers_stalled": ("stalled-workers alert", "stalled-workers alerts"),
    "array_failing": ("failing-array alert", "failing-array alerts"),
    "array_budget": ("budget alert", "budget alerts"),
    "fleet_unhealthy": ("fleet health alert", "fleet health alerts"),
}


@dataclass(frozen=True)
class QueueMessage:
    """One SQS record: its id (for a partial batch failure) and body."""

    message_id: str
    body: str


class Reports(Protocol):
    """Builds an array's report from its `array_finished` alert (`report.ArrayReports`)."""

    def report_notice(self, signal: Signal) -> Notice: ...


class QueueUrls:
    """Queue URLs by name, each asked of SQS once per process."""

    def __init__(self, sqs: SQSClient) -> None:
        self.sqs = sqs
        self._urls: dict[str, str] = {}

    def url(self, queue: str) -> str:
        if queue not in self._urls:
            self._urls[queue] = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return self._urls[queue]


class Dispatcher:
    """Puts a notice on the delivery queue, once for each destination that takes it.

    Args:
        book: the destinations in force.
        sqs: an SQS client.
        queue: the delivery queue's name (`NOTIFY_DELIVER_QUEUE`).
    """

    def __init__(self, book: DestinationBook, sqs: SQSClient, queue: str) -> None:
        self.book = book
        self.sqs = sqs
        self.queue = queue
        self.urls = QueueUrls(sqs)

    def dispatch_notice(self, notice: Notice) -> list[str]:
        """The names of the destinations the notice was queued for."""
        names = [d.name for d in self.book.matching(notice)]
        jobs = [DeliveryJob(notice, name) for name in names]
        send_jobs(self.sqs, self.urls.url(self.queue), jobs)
        logger.info(
            "notice dispatched",
            extra={
                "notice_id": notice.notice_id,
                "event_type": notice.event_type,
                "count": notice.count,
                "destinations": names,
            },
        )
        return names


def send_jobs(sqs: SQSClient, queue_url: str, jobs: Sequence[DeliveryJob], delay: int = 0) -> None:
    """Send `jobs` in batches of 10; raises when SQS refuses any (the caller's message
    is retried, and the claims make the retry safe)."""
    for chunk in chunked(list(jobs), SQS_BATCH):
        entries: list[Any] = [
            {"Id": str(i), "MessageBody": job.to_json(), "DelaySeconds": delay}
            for i, job in enumerate(chunk)
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} delivery jobs: {failed[0].get('Code')}")


class Rollup:
    """The `notify_intake` function's work.

    Args:
        dynamodb: a DynamoDB client; `table` the stats table.
        sqs: an SQS client; `queue` the notify queue (`NOTIFY_QUEUE`) its timers go to.
        dispatcher: where notices go.
        reports: builds an array's report.
        array_info: (name, declared size) of an array, or None.
        instance_of: an instance's registry row, or None (for alarm changes).
        window_seconds: `NOTIFY_WINDOW_SECONDS`.
        critical_topic: the critical topic's name (alarm changes seen there are critical).
        clock: epoch seconds; sleep: how to wait between transaction conflicts.
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        sqs: SQSClient,
        queue: str,
        dispatcher: Dispatcher,
        reports: Reports,
        array_info: Callable[[str], tuple[str | None, int | None] | None],
        instance_of: Callable[[str], Mapping[str, Any] | None],
        *,
        window_seconds: int,
        critical_topic: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.sqs = sqs
        self.queue = queue
        self.dispatcher = dispatcher
        self.reports = reports
        self.array_info = array_info
        self.instance_of = instance_of
        self.window = window_seconds
        self.critical_topic = critical_topic
        self.clock = clock
        self.sleep = sleep
        self.urls = QueueUrls(sqs)

    # --- the batch ------------------------------------------------------------------

    def take_batch(self, messages: Sequence[QueueMessage]) -> list[str]:
        """Take a batch; returns the ids of the messages to retry."""
        failed: list[str] = []
        grouped: dict[str, list[tuple[str, Signal]]] = defaultdict(list)
        for message in messages:
            try:
                read = read_message(message.body, self.instance_of, self.critical_topic)
            except Unreadable as exc:
                # Retrying cannot fix it: say why (not what it said) and drop it.
                logger.error("notify message skipped", extra={"reason": str(exc)})
                continue
            try:
                if read is None:
                    continue
                if isinstance(read, Flush):
                    self.flush_bucket(read.key)
                elif read.event_type == REPORT_EVENT:
                    self.dispatcher.dispatch_notice(self.reports.report_notice(read))
                elif read.severity in AT_ONCE:
                    self.dispatcher.dispatch_notice(self.critical_notice(read))
                else:
                    grouped[read.group].append((message.message_id, read))
            except Exception as exc:
                logger.exception(
                    "notify message failed; SQS will retry it",
                    extra={"error": type(exc).__name__},
                )
                failed.append(message.message_id)
        for group in grouped.values():
            try:
                self.count_group(group)
            except Exception as exc:
                logger.exception(
                    "notify rollup write failed; SQS will retry it",
                    extra={"error": type(exc).__name__},
                )
                failed.extend(message_id for message_id, _ in group)
        return failed

    # --- counting -------------------------------------------------------------------

    def count_group(self, group: Sequence[tuple[str, Signal]]) -> int:
        """Count one group's signals in the current window's bucket; returns how many
        were new (the others were counted before)."""
        unique = {signal.signal_id: signal for _, signal in group}
        counted = 0
        for chunk in chunked(list(unique.values()), CLAIMS_PER_TRANSACTION):
            counted += self._count_chunk(list(chunk))
        return counted

    def _count_chunk(self, signals: list[Signal]) -> int:
        window = int(self.clock() // self.window)
        for attempt in range(TRANSACTION_ATTEMPTS):
            if not signals:
                return 0
            key = bucket_key(signals[0].group, window)
            items = [self._claim(s) for s in signals] + [self._bucket_update(key, window, signals)]
            try:
                self.dynamodb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if len(reasons) != len(items):
                    raise
                seen = {
                    s.signal_id
                    for s, code in zip(signals, reasons, strict=False)
                    if code == "ConditionalCheckFailed"
                }
                if seen:
                    signals = [s for s in signals if s.signal_id not in seen]
                elif reasons[-1] == "ConditionalCheckFailed":
                    window += 1  # the bucket is closing: the next window takes these
                elif "TransactionConflict" in reasons:
                    longest = min(TRANSACT_CAP_SECONDS, TRANSACT_BASE_SECONDS * 2**attempt)
                    self.sleep(random.uniform(0, longest))  # noqa: S311 - jitter
                else:
                    raise
                continue
            self._arm_timer(key, window)
            return len(signals)
        raise RuntimeError("notify rollup: transaction conflicts past the attempts")

    def _claim(self, signal: Signal) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "key": {"S": SIGNAL_PREFIX + signal.signal_id},
                    "expires_at": {"N": str(int(self.clock()) + CLAIM_SECONDS)},
                },
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "key"},
            }
        }

    def _bucket_update(self, key: str, window: int, signals: list[Signal]) -> dict[str, Any]:
        first = signals[0]
        names = {"#closing": "closing", "#n": "n", "#alerts": "alerts"}
        values: dict[str, Any] = {
            ":n": {"N": str(sum(s.weight for s in signals))},
            ":alerts": {"N": str(len(signals))},
            ":group": {"S": first.group},
            ":event_type": {"S": first.event_type},
            ":severity": {"S": max((s.severity for s in signals), key=SEVERITY_ORDER.__getitem__)},
            ":first_ms": {"N": str(min(_ms(s.at) for s in signals))},
            ":last_ms": {"N": str(max(_ms(s.at) for s in signals))},
            ":subject": {"S": first.subject},
            ":details": {"S": json.dumps(dict(first.details), default=str)[:4000]},
            ":window_end": {"N": str((window + 1) * self.window)},
            ":expires": {"N": str(int(self.clock()) + BUCKET_SECONDS)},
        }
        sets = [
            "#group = if_not_exists(#group, :group)",
            "event_type = if_not_exists(event_type, :event_type)",
            "severity = if_not_exists(severity, :severity)",
            "first_ms = if_not_exists(first_ms, :first_ms)",
            "last_ms = :last_ms",
            "subject1 = if_not_exists(subject1, :subject)",
            "details1 = if_not_exists(details1, :details)",
            "window_end = if_not_exists(window_end, :window_end)",
            "expires_at = if_not_exists(expires_at, :expires)",
        ]
        names["#group"] = "group"
        for field, value in (
            ("array_id", first.array_id),
            ("owner", next((s.owner for s in signals if s.owner), None)),
            ("state", first.state),
        ):
            if value:
                sets.append(f"{field} = if_not_exists({field}, :{field})")
                values[f":{field}"] = {"S": value}
        adds = ["#n :n", "#alerts :alerts"]
        tallies: Counter[tuple[str, str]] = Counter()
        for signal in signals:
            for breakdown, value in signal.breakdown.items():
                tallies[(breakdown, value[:VALUE_MAX])] += signal.weight
        for i, ((breakdown, value), n) in enumerate(sorted(tallies.items())):
            names[f"#b{i}"] = f"by#{breakdown}#{value}"
            values[f":b{i}"] = {"N": str(n)}
            adds.append(f"#b{i} :b{i}")
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"key": {"S": key}},
                "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
                "ConditionExpression": "attribute_not_exists(#closing)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _arm_timer(self, key: str, window: int) -> None:
        """The bucket's first writer sends its timer, delayed to the window's end."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": key}},
                UpdateExpression="SET timer_at = :now",
                ConditionExpression="attribute_not_exists(timer_at)",
                ExpressionAttributeValues={":now": {"N": str(int(self.clock()))}},
            )
        except ClientError as exc:
            if conditional_check_failed(exc):
                return  # armed by an earlier writer
            raise
        delay = max(0, min(900, int((window + 1) * self.window - self.clock()) + 1))
        try:
            self.sqs.send_message(
                QueueUrl=self.urls.url(self.queue),
                MessageBody=json.dumps({"notify_flush": key}),
                DelaySeconds=delay,
            )
        except Exception:
            # Disarm, so the retried batch (its claims counted already) arms it again.
            self.dynamodb.update_item(
                TableName=self.table, Key={"key": {"S": key}}, UpdateExpression="REMOVE timer_at"
            )
            raise

    # --- sending --------------------------------------------------------------------

    def flush_bucket(self, key: str) -> Notice | None:
        """Close the bucket and dispatch its notice; None when there is nothing to send
        (sent already by an earlier copy of the timer, or expired)."""
        try:
            item = self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": key}},
                UpdateExpression="SET closing = if_not_exists(closing, :now)",
                ConditionExpression="attribute_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
                ExpressionAttributeValues={":now": {"N": str(int(self.clock()))}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if conditional_check_failed(exc):
                logger.warning("notify bucket gone before its timer", extra={"bucket": key})
                return None
            raise
        if "sent_at" in item:
            return None
        notice = self.bucket_notice(key, item)
        self.dispatcher.dispatch_notice(notice)
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"key": {"S": key}},
            UpdateExpression="SET sent_at = :now",
            ExpressionAttributeValues={":now": {"N": str(int(self.clock()))}},
        )
        return notice

    def bucket_notice(self, key: str, item: Mapping[str, Any]) -> Notice:
        """The one message a closed bucket becomes."""
        text = {k: v["S"] for k, v in item.items() if "S" in v}
        number = {k: int(v["N"]) for k, v in item.items() if "N" in v}
        array_id = text.get("array_id")
        name, size = self._array(array_id)
        event_type, count, alerts = text["event_type"], number["n"], number["alerts"]
        first = datetime.fromtimestamp(number["first_ms"] / 1000, UTC)
        last = datetime.fromtimestamp(number["last_ms"] / 1000, UTC)
        breakdowns: dict[str, tuple[tuple[str, int], ...]] = {}
        for breakdown in BREAKDOWNS:
            prefix = f"by#{breakdown}#"
            found = [(k[len(prefix) :], number[k]) for k in number if k.startswith(prefix)]
            if found:
                breakdowns[breakdown] = tuple(sorted(found, key=lambda p: (-p[1], p[0])))
        where = f" in array {name or array_id}" if array_id else " across the fleet"
        if alerts == 1:
            subject, lines = text["subject1"], []
        else:
            subject = f"{count:,} {_label(event_type, text.get('state'), count)}{where}"
            lines = [f"{subject} between {first:%H:%M:%S} and {last:%H:%M:%S} UTC."]
        if event_type == "spot_interruption" and size:
            lines.append(f"{count:,} of {size:,} workers interrupted.")
        top = _top_line(breakdowns, count)
        if top:
            lines.append(top)
        details: dict[str, Any] = {"first_at": first.isoformat(), "last_at": last.isoformat()}
        if alerts == 1:
            details = {**_loads(text.get("details1")), **details}
        return Notice(
            notice_id=key,
            kind="alert",
            event_type=event_type,
            severity=text.get("severity", "warning"),
            subject=subject,
            text="\n".join(lines) or subject,
            count=count,
            array_id=array_id,
            array_name=name,
            owner=text.get("owner"),
            first_at=first,
            last_at=last,
            window_seconds=self.window,
            breakdowns=breakdowns,
            details=details,
        )

    def critical_notice(self, signal: Signal) -> Notice:
        """A critical alert as its own notice, sent now."""
        name, _ = self._array(signal.array_id)
        breakdowns = {k: ((v, signal.weight),) for k, v in signal.breakdown.items()}
        return Notice(
            notice_id=f"alert:{signal.signal_id}",
            kind="alert",
            event_type=signal.event_type,
            severity=signal.severity,
            subject=signal.subject,
            text=signal.subject,
            count=signal.weight,
            array_id=signal.array_id,
            array_name=name,
            owner=signal.owner,
            first_at=signal.at,
            last_at=signal.at,
            breakdowns=breakdowns,
            details=dict(signal.details),
        )

    def _array(self, array_id: str | None) -> tuple[str | None, int | None]:
        if not array_id:
            return None, None
        try:
            return self.array_info(array_id) or (None, None)
        except ClientError as exc:  # the name only decorates the message
            logger.warning(
                "array name not readable for a notice",
                extra={"array_id": array_id, "error": exc.response["Error"]["Code"]},
            )
            return None, None


def bucket_key(group: str, window: int) -> str:
    return f"{BUCKET_PREFIX}{group}#{window}"


def _label(event_type: str, state: str | None, count: int) -> str:
    if event_type == ALARM_CHANGE:
        return f"instance alarm{'s' if count != 1 else ''} went to {state or 'a new state'}"
    one, many = _LABELS.get(event_type, (f"{event_type} alert", f"{event_type} alerts"))
    return one if count == 1 else many


def _top_line(breakdowns: Mapping[str, Sequence[tuple[str, int]]], count: int) -> str:
    """'290 of them c5.xlarge, 280 in us-east-1a': the largest of each breakdown."""
    parts = []
    for breakdown, words in (("instance_type", "{n:,} {v}"), ("zone", "{n:,} in {v}")):
        values = breakdowns.get(breakdown)
        if values and count > 1:
            value, n = values[0]
            parts.append(words.format(n=n, v=value))
    codes = breakdowns.get("error_code")
    if codes and count > 1:
        parts.append(", ".join(f"{n:,} {code}" for code, n in codes[:3]))
    if not parts:
        return ""
    return "Of them: " + "; ".join(parts) + "."


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
