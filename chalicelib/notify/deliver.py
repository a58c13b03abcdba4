"""The delivery queue's consumer: each (notice, destination) posted once, paced, retried.

Each job is claimed (`notify-delivery#{notice}:{destination}`), so an SQS duplicate
never posts twice; waits for its destination's pace (`RATE_BY_KIND`, shared through
the stats table); and is then delivered, retried as a delayed job of the next attempt
(429 `Retry-After`, 5xx and timeouts with backoff), or after `NOTIFY_MAX_ATTEMPTS` (or
a refusal) sent to the failed queue with a `notify_delivery_failed` feed line.
Destinations post side by side and one that fails has its other jobs deferred, so it
never delays the rest. A timed-out post is retried (at least once; the webhook's
`X-Spawn-Notice` lets a receiver drop a repeat). URLs are never logged.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from chalicelib.alarms.budget import AccountBudget
from chalicelib.alerts.publish import Alert
from chalicelib.core.batching import conditional_check_failed
from chalicelib.core.pacing import Pacer
from chalicelib.notify import http
from chalicelib.notify.destinations import DestinationBook
from chalicelib.notify.model import DeliveryJob, Destination, HttpRequest, Notice
from chalicelib.notify.render import render
from chalicelib.notify.rollup import QueueMessage, QueueUrls, send_jobs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

DELIVERY_PREFIX = "notify-delivery#"
KEEP_SECONDS = 5 * 86400
# Posts per second per destination: Slack ~1 per webhook; Discord 30 a minute per
# channel (its per-webhook 5 per 2 s is looser); Teams workflows 4 a second per
# connector, kept at 1 like Slack; a generic webhook is ours to pace.
RATE_BY_KIND = {"slack": 1.0, "discord": 0.5, "teams": 1.0, "webhook": 5.0}
# Backoff after a 5xx or a timeout: 10 s, 20 s, 40 s ... at most 15 min (SQS's longest
# delay), with full jitter above half of it.
BACKOFF_FIRST_SECONDS = 10
SQS_MAX_DELAY_SECONDS = 900
# Jobs of a destination that failed in this batch wait this long before their turn.
DEFER_SECONDS = 10
THREADS = 8
Outcome = Literal["delivered", "retried", "failed", "duplicate", "deferred", "dropped"]


class Feed(Protocol):
    """Where the failed-delivery line goes (`AlertHistory.add_alert`)."""

    def add_alert(self, alert: Alert, topic_arn: str, owner: str | None) -> None: ...


@dataclass(frozen=True)
class Tried:
    """What became of one job (for the log and the tests)."""

    delivery_id: str
    outcome: Outcome
    status: int | None = None
    error: str | None = None


class Delivery:
    """The `notify_deliver` function's work.

    Args:
        dynamodb, table: the stats table (claims and pacing).
        sqs: an SQS client; `queue` the delivery queue (retries), `failed_queue` where
            deliveries end that could not be made.
        book: the destinations in force.
        feed: the alert feed, for the failed-delivery line.
        max_attempts: `NOTIFY_MAX_ATTEMPTS`; timeout: `NOTIFY_TIMEOUT_SECONDS`.
        pacer_for: a destination's pacer (default: a stats-table budget at its kind's
            rate, shared by every invocation).
        post: how a request is sent (`http.post`).
        clock, sleep: time.
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        sqs: SQSClient,
        queue: str,
        failed_queue: str,
        book: DestinationBook,
        feed: Feed | None,
        *,
        max_attempts: int,
        timeout: float,
        pacer_for: Callable[[Destination], Pacer] | None = None,
        post: Callable[[HttpRequest, float], http.PostResult] = http.post,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.sqs = sqs
        self.queue = queue
        self.failed_queue = failed_queue
        self.book = book
        self.feed = feed
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.post = post
        self.clock = clock
        self.sleep = sleep
        self._pacer_for = pacer_for or self._budget
        self._pacers: dict[str, Pacer] = {}
        self.urls = QueueUrls(sqs)

    # --- the batch ------------------------------------------------------------------

    def deliver_batch(self, messages: Sequence[QueueMessage]) -> list[str]:
        """Deliver a batch; returns the ids of the messages to retry."""
        by_destination: dict[str, list[tuple[str, DeliveryJob]]] = defaultdict(list)
        for message in messages:
            try:
                job = DeliveryJob.from_json(message.body)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("delivery job unreadable", extra={"error": type(exc).__name__})
                continue
            by_destination[job.destination].append((message.message_id, job))
        if not by_destination:
            return []
        failed: list[str] = []
        with ThreadPoolExecutor(max_workers=min(THREADS, len(by_destination))) as pool:
            for retry in pool.map(self._destination, by_destination.values()):
                failed.extend(retry)
        return failed

    def _destination(self, jobs: list[tuple[str, DeliveryJob]]) -> list[str]:
        """One destination's jobs, in turn; once one must wait, the rest are deferred."""
        failed: list[str] = []
        down = False
        for message_id, job in jobs:
            try:
                if down:
                    self._requeue(job, job.attempt, DEFER_SECONDS)
                    self._log(Tried(job.delivery_id, "deferred"), job)
                    continue
                down = _looks_down(self.deliver_job(job))
            except Exception as exc:
                logger.exception(
                    "delivery job failed; SQS will retry it",
                    extra={"delivery_id": job.delivery_id, "error": type(exc).__name__},
                )
                failed.append(message_id)
        return failed

    # --- one job --------------------------------------------------------------------

    def deliver_job(self, job: DeliveryJob) -> Tried:
        destination = self.book.named(job.destination)
        if destination is None:
            tried = Tried(job.delivery_id, "dropped", error="no such destination")
            self._log(tried, job)
            return tried
        attempt = job.attempt + 1
        if not self._claim(job.delivery_id, attempt):
            tried = Tried(job.delivery_id, "duplicate")
            self._log(tried, job)
            return tried
        self._pacer(destination).acquire()
        now = datetime.fromtimestamp(self.clock(), UTC)
        result = self.post(render(job.notice, destination, now), self.timeout)
        if result.outcome == "delivered":
            self._record(job.delivery_id, "delivered", attempt, result.status)
            tried = Tried(job.delivery_id, "delivered", result.status)
        elif result.outcome == "retry" and attempt < self.max_attempts:
            delay = self._delay(attempt, result.retry_after)
            self._record(job.delivery_id, "retry", attempt, result.status)
            self._requeue(job, attempt, delay)
            tried = Tried(job.delivery_id, "retried", result.status, result.error)
        else:
            self._fail(job, destination, attempt, result)
            tried = Tried(job.delivery_id, "failed", result.status, result.error)
        self._log(tried, job, attempt)
        return tried

    def _claim(self, delivery_id: str, attempt: int) -> bool:
        now = self.clock()
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": DELIVERY_PREFIX + delivery_id}},
                UpdateExpression=(
                    "SET #state = :sending, attempt = :attempt, lease_until = :lease, "
                    "expires_at = :expires"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#k)"
                    " OR (#state = :retry AND attempt < :attempt)"
                    " OR (#state = :sending AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#k": "key", "#state": "state"},
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":retry": {"S": "retry"},
                    ":attempt": {"N": str(attempt)},
                    ":now": {"N": str(int(now))},
                    # A post takes at most the timeout (connect, then read) and the pace.
                    ":lease": {"N": str(int(now + 2 * self.timeout + 30))},
                    ":expires": {"N": str(int(now) + KEEP_SECONDS)},
                },
            )
            return True
        except ClientError as exc:
            if conditional_check_failed(exc):
                return False
            raise

    def _record(self, delivery_id: str, state: str, attempt: int, status: int | None) -> None:
        values: dict[str, Any] = {":state": {"S": state}, ":attempt": {"N": str(attempt)}}
        expression = "SET #state = :state, attempt = :attempt"
        if status is not None:
            expression += ", http_status = :status"
            values[":status"] = {"N": str(status)}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"key": {"S": DELIVERY_PREFIX + delivery_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> int:
        if retry_after is not None:
            return min(SQS_MAX_DELAY_SECONDS, max(1, int(retry_after + 0.999)))
        ceiling = min(SQS_MAX_DELAY_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1))
        return int(random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not secrecy

    def _requeue(self, job: DeliveryJob, attempt: int, delay: int) -> None:
        again = DeliveryJob(job.notice, job.destination, attempt)
        send_jobs(self.sqs, self.urls.url(self.queue), [again], delay=delay)

    def _fail(
        self, job: DeliveryJob, destination: Destination, attempt: int, result: http.PostResult
    ) -> None:
        """To the failed queue, then the feed line, then recorded as failed."""
        reason = result.error or result.outcome
        self.sqs.send_message(
            QueueUrl=self.urls.url(self.failed_queue),
            MessageBody=json.dumps(
                {
                    "job": json.loads(job.to_json()),
                    "attempts": attempt,
                    "reason": reason,
                    "http_status": result.status,
                },
                sort_keys=True,
            ),
        )
        if self.feed is not None:
            notice = job.notice
            self.feed.add_alert(
                failed_line(notice, destination, attempt, reason, self.clock()),
                "notify",
                notice.owner,
            )
        self._record(job.delivery_id, "failed", attempt, result.status)

    # --- helpers --------------------------------------------------------------------

    def _pacer(self, destination: Destination) -> Pacer:
        if destination.name not in self._pacers:
            self._pacers[destination.name] = self._pacer_for(destination)
        return self._pacers[destination.name]

    def _budget(self, destination: Destination) -> Pacer:
        return AccountBudget(
            self.dynamodb,
            self.table,
            f"notify:{destination.name}",
            RATE_BY_KIND[destination.kind],
            lease=1,
            clock=self.clock,
            sleep=self.sleep,
        )

    def _log(self, tried: Tried, job: DeliveryJob, attempt: int | None = None) -> None:
        level = logging.WARNING if tried.outcome in ("failed", "dropped") else logging.INFO
        logger.log(
            level,
            f"notice {tried.outcome}",
            extra={
                "delivery_id": tried.delivery_id,
                "destination": job.destination,
                "event_type": job.notice.event_type,
                "attempt": attempt if attempt is not None else job.attempt,
                "http_status": tried.status,
                "error": tried.error,
            },
        )


def _looks_down(tried: Tried) -> bool:
    """Whether the destination itself failed (so its other jobs should wait), rather
    than refused this one body."""
    if tried.outcome == "retried":
        return True
    return tried.outcome == "failed" and (
        tried.status is None or tried.status == 429 or tried.status >= 500
    )


def failed_line(
    notice: Notice, destination: Destination, attempts: int, reason: str, now: float
) -> Alert:
    """The alert feed's line for a delivery that could not be made."""
    return Alert(
        event_type="notify_delivery_failed",
        severity="warning",
        subject=(
            f"Chat delivery to {destination.name} failed after {attempts} tries ({reason}): "
            f"{notice.subject}"
        ),
        details={
            "destination": destination.name,
            "kind": destination.kind,
            "notice_id": notice.notice_id,
            "notice_event_type": notice.event_type,
            "attempts": attempts,
            "reason": reason,
        },
        array_id=notice.array_id,
        time=datetime.fromtimestamp(now, UTC),
        owner=notice.owner,
        dedupe_key=f"{notice.notice_id}:{destination.name}",
    )
