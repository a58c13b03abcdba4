"""Play a fleet history through the real handlers on moto (in-process), with faults.

The world (`chaos.history`) happens on moto EC2 and in the progress table; what AWS
would deliver reaches the handlers the way AWS delivers it:

- state changes: EventBridge → SQS → `Lifecycle.handle` in batches of up to 100; a
  message the handler reports failed comes back after the queue's visibility timeout,
  and after `maxReceiveCount` receives it goes to the dead-letter queue (both from
  `infra/resources.json`); a crashed batch comes back whole;
- spot warnings, rebalance recommendations, alarm notifications: one asynchronous
  invocation each (`Interruptions.on_warning` / `on_rebalance`, `Notifications.handle`,
  wrapped as `app.py` wraps them), retried twice on error, then sent to the failure
  queue with the error as its reason (Lambda's on-failure destination);
- progress rows: the stream records DynamoDB makes for every write to the table
  (the workers' and the handlers' own lost marks) reach `handle_stream` in per-shard
  batches with a tumbling window; a failed record is retried from there, up to the
  mapping's `MaximumRetryAttempts`, then the rest of the batch goes to the failure
  queue;
- schedules: `ProgressAggregator.tick` every minute, `reconcile` every 15 minutes with
  its Lambda time budget.

Delivery faults: duplicates, reordering within a window, drops (state changes and
stream records: the reconciler and the recount must heal those), malformed events,
and a crash mid-invocation. `chaos.faults` adds throttling, 5xx and timeouts at the HTTP
layer. Time is virtual: pacing, botocore's retry backoff and the handlers' own waits
sleep on it, so hours of fleet take a minute or two.

After the world ends, the replay settles: it delivers what is left, moves the clock
past the recount interval, and runs the reconciler (until it defers nothing) and the
tick. `chaos.invariants` then checks moto's state.

Its length (over 400 lines): `World` is one state machine of AWS's delivery rules;
the clock is `testkit.clocks.ReplayClock`, the reading of moto `chaos.observe`.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

from chalicelib.container import Container
from chalicelib.core.clients import RETRY_CONFIG, Clients
from chalicelib.core.pacing import RateLimiter
from chalicelib.core.settings import Settings
from chalicelib.fleet.events import MalformedEvent
from chalicelib.fleet.lifecycle import Message
from chaos import events
from chaos.faults import Crash, HttpFaults, Rates
from chaos.history import History, Step
from chaos.invariants import Observed
from chaos.observe import observe
from local.lambda_runtime import stream_event
from local.provision import Provisioned, load_template, provision
from testkit.clocks import ReplayClock
from testkit.delivery import (
    async_retry_delay,
    batch_due,
    reported_failures,
    sqs_settle,
    stream_resume,
)

logger = logging.getLogger("chaos")

T0 = datetime(2026, 1, 27, 8, 0, tzinfo=UTC)
LIFECYCLE_BATCH = 100
LIFECYCLE_WINDOW = 20.0  # app.py: maximum_batching_window_in_seconds
STREAM_BATCH = 100
STREAM_SHARDS = ("shardId-00000001700000000000-000000000001", "shardId-00000001700000000000-0002")
TICK_EVERY = 60.0
RECONCILE_EVERY = 900.0
RECONCILE_TIMEOUT = 600.0  # .chalice/config.json; app.py gives the run 70 % of it
SETTLE_ROUNDS = 3
DYNAMODB_OPERATIONS = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
]
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


@dataclass
class Odds:
    """Delivery faults, as shares of deliveries (and of invocations, for crashes)."""

    duplicate: float = 0.10
    drop: float = 0.05
    malformed: float = 0.02
    reorder_window: float = 30.0
    crash: float = 0.05


@dataclass
class Options:
    """What to replay, and what to leave out on purpose (to show the checker fails)."""

    seed: int
    instances: int = 1000
    odds: Odds = field(default_factory=Odds)
    rates: Rates = field(default_factory=Rates)
    reconciler: bool = True
    recount: bool = True
    alarm_mode: str = "per-instance"


@dataclass
class Delivery:
    """One delivery of an event: an SQS message, an asynchronous invocation."""

    key: str
    origin: str  # the event's id; copies of one event share it
    body: Any
    visible_at: float
    malformed: bool
    attempts: int = 0


@dataclass
class Record:
    """One stream record on its shard."""

    record: dict[str, Any]
    visible_at: float
    malformed: bool
    attempts: int = 0


class Rejections(logging.Handler):
    """Captures the WARNING-and-above records the handlers log, with the delivery being
    handled, so each malformed input can be matched with its logged error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.current: str | None = None
        self.records: list[tuple[str, str | None, str | None]] = []
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # A record reaches each logger up the hierarchy in turn: take it once.
        if record is self._last:
            return
        self._last = record
        key = getattr(record, "message_id", None) or getattr(record, "event_id", None)
        self.records.append((record.getMessage(), key, self.current))


class MetricLines(io.TextIOBase):
    """Where the handlers' Embedded Metric Format lines go (stdout, in Lambda): each
    line's values are summed by (namespace, metric, dimensions)."""

    def __init__(self) -> None:
        self.sums: Counter[tuple[str, str, str]] = Counter()
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._add(line)
        return len(text)

    def _add(self, line: str) -> None:
        try:
            document = json.loads(line)
            [directive] = document["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            return
        [dimensions] = directive["Dimensions"] or [[]]
        where = ",".join(f"{d}={document[d]}" for d in dimensions)
        for metric in directive["Metrics"]:
            values = document[metric["Name"]]
            total = sum(values) if isinstance(values, list) else values
            self.sums[(directive["Namespace"], metric["Name"], where)] += total


@dataclass
class Ledger:
    """What was delivered and what became of it, for the invariants."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # origin → facts
    delivered: set[str] = field(default_factory=set)  # origins with a well-formed delivery
    malformed: Counter[str] = field(default_factory=Counter)  # key → times handed over
    malformed_kinds: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)
    crash_after: Counter[str] = field(default_factory=Counter)
    rows_written: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)  # origins an invocation finished
    failed_runs: Counter[str] = field(default_factory=Counter)  # scheduled runs that failed


@dataclass
class World:
    """The replay's state: moto, the handlers, the queues, the ledger."""

    options: Options
    history: History
    session: boto3.Session
    infra: Provisioned
    clock: ReplayClock
    settings: Settings = field(default_factory=Settings)
    ledger: Ledger = field(default_factory=Ledger)
    rejections: Rejections = field(default_factory=Rejections)
    metrics: MetricLines = field(default_factory=MetricLines)

    def __post_init__(self) -> None:
        seed = self.options.seed
        # moto has neither observabilityadmin nor DescribeAlarmContributors.
        skipped = ("DescribeAlarmContributors", "GetTelemetryEnrichmentStatus")
        self.settings = replace(
            self.settings, alarm_mode=self.options.alarm_mode, console_skip_calls=skipped
        )
        self.rng = random.Random(f"{seed}-delivery")
        self.http = HttpFaults(random.Random(f"{seed}-http"), self.clock.time, self.options.rates)
        # The world's own clients (EC2 doing what it does, workers, the checker): no faults.
        self.aws = Clients(self.session)
        # The handlers' clients: every fault, and standard retries (adaptive mode's client
        # side bucket would wait in real time, which a virtual clock cannot speed up).
        self._config = RETRY_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 10}))
        self._build_handlers()
        self.ids: dict[tuple[str, int], str] = {}
        self.lifecycle_queue: list[Delivery] = []
        self.async_queue: list[tuple[str, Delivery]] = []
        self.shards: dict[str, list[Record]] = {shard: [] for shard in STREAM_SHARDS}
        self.images: dict[tuple[str, int], dict[str, Any]] = {}
        self.touched: set[tuple[str, int]] = set()
        self.sequence = itertools.count(10**20, 13)
        self.ids_made = itertools.count(1)
        queue = self.infra.resources["LifecycleQueue"]["Properties"]
        self.visibility = float(queue["VisibilityTimeout"])
        self.max_receives = int(queue["RedrivePolicy"]["maxReceiveCount"])
        mapping = self._stream_mapping()
        self.stream_retries = int(mapping["MaximumRetryAttempts"])
        self.window = int(mapping.get("TumblingWindowInSeconds", 0))
        self.stream_window = float(mapping.get("MaximumBatchingWindowInSeconds", 0))
        self.alerts_queue = self._subscribe_alert_queue()
        self.start = self.clock.time()
        self.position = 0
        self.clock.world = self.happen_until

    def happen_until(self, t: float) -> None:
        """Carry out the world's steps due by `t`, each at its own time."""
        steps = self.history.steps
        while self.position < len(steps) and self.start + steps[self.position].at <= t:
            step = steps[self.position]
            self.position += 1
            self.clock.step_to(self.start + step.at)
            self.do(step)

    def world_done(self) -> bool:
        return self.position >= len(self.history.steps)

    # --- wiring -------------------------------------------------------------------

    def _function(self) -> Clients:
        """The clients of one Lambda function (each function is its own process, with
        its own connections and botocore retry quota), with every fault installed, and
        standard retries: adaptive mode's client-side bucket would wait in real time,
        which a virtual clock cannot speed up."""
        aws = Clients(self.session, self._config)
        self.http.install(aws.dynamodb, "dynamodb", DYNAMODB_OPERATIONS)
        self.http.install(
            aws.cloudwatch, "cloudwatch", ["PutMetricAlarm", "DeleteAlarms", "DescribeAlarms"]
        )
        self.http.install(aws.sns, "sns", ["Publish"])
        aws.dynamodb.meta.events.register("before-call.dynamodb", self._touched_progress_row)
        return aws

    def _pacer(self, operation: str) -> RateLimiter:
        # Each function paces at its share of the quota, on the virtual clock.
        rate = self.settings.alarm_api_tps / self.settings.lifecycle_max_concurrency
        return RateLimiter(rate, clock=self.clock.time, sleep=self.clock.sleep)

    def _container(self) -> Container:
        """One Lambda function's wiring: the deployed container, on its own faulty
        clients, the virtual clock and a local pacer."""
        wiring = Container(
            self.settings,
            self._function(),
            clock=self.clock.time,
            sleep=self.clock.sleep,
            pacer=self._pacer,
        )
        assert wiring.alerts_topic_arn == self.infra.arns["AlertsTopic"]
        return wiring

    def _build_handlers(self) -> None:
        """The handlers, one container (one function) each, as deployed."""
        if self.settings.alarm_mode == "fleet-query":
            # Setup on deploy: the query alarms exist before the first event.
            self._container().alarm_modes.prepare()
        self.lifecycle = self._container().lifecycle
        self.interruptions = self._container().interruptions
        self.notifications = self._container().notifications
        self.aggregator = self._container().progress
        self.ticker = self._container().progress
        self.reconciler = self._container()

    def _stream_mapping(self) -> dict[str, Any]:
        for resource in load_template()["Resources"].values():
            for source in resource.get("Properties", {}).get("Events", {}).values():
                if source.get("Type") == "DynamoDB":
                    return source["Properties"]  # type: ignore[no-any-return]
        raise ValueError("no DynamoDB stream mapping in infra/resources.json")

    def _subscribe_alert_queue(self) -> str:
        """An SQS queue on both topics, to count every alert the system sends."""
        sqs = self.session.client("sqs")
        url = sqs.create_queue(QueueName="chaos-alert-counter")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns = self.session.client("sns")
        for topic in ("AlertsTopic", "CriticalTopic"):
            sns.subscribe(TopicArn=self.infra.arns[topic], Protocol="sqs", Endpoint=arn)
        return url

    def _touched_progress_row(self, params: dict[str, Any], **_: Any) -> None:
        """Rows the handlers write (lost marks): their stream records are made after
        the invocation, from the table, as DynamoDB makes one for every change."""
        if params.get("TableName") == self.settings.progress_table and "Key" in params:
            key = params["Key"]
            self.touched.add((key["array_id"]["S"], int(key["task_index"]["N"])))

    # --- the world ----------------------------------------------------------------

    def do(self, step: Step) -> None:
        """Carry out one world step now, and emit what AWS would deliver for it."""
        now = self.clock.now()
        key = (step.array, step.index)
        if step.kind == "launch":
            self.ids[key] = self._launch(step)
            self._state(key, "pending", now)
            return
        instance_id = self.ids[key]
        ec2 = self.aws.ec2
        if step.kind == "running":
            self._state(key, "running", now)
        elif step.kind == "stop":
            ec2.stop_instances(InstanceIds=[instance_id])
            self._state(key, "stopping", now)
            self._state(key, "stopped", now)
        elif step.kind == "start":
            ec2.start_instances(InstanceIds=[instance_id])
            self._state(key, "pending", now)
            self._state(key, "running", now)
        elif step.kind == "terminate":
            ec2.terminate_instances(InstanceIds=[instance_id])
            self._state(key, "shutting-down", now)
            self._state(key, "terminated", now)
        elif step.kind == "warning":
            detail = {"instance-action": step.data["action"]}
            self._ec2_event("warning", key, now, detail)
        elif step.kind == "rebalance":
            self._ec2_event("rebalance", key, now, {})
        elif step.kind == "row":
            self._write_row(key, step.data["values"], now)
        elif step.kind == "alarm":
            message = events.alarm_message(
                instance_id,
                step.data["check"],
                step.data["state"],
                step.data.get("old", "ALARM"),
                now,
                self.infra.arns["AlertsTopic"],
            )
            origin = f"alarm-{next(self.ids_made)}"
            body = json.loads(message)
            self.ledger.events[origin] = {
                "kind": "alarm",
                "instance_id": instance_id,
                "seen_at": f"{body['StateChangeTime']}#{body['AlarmName']}#{body['NewStateValue']}",
                "changed_at": body["StateChangeTime"],
                "alarm": body["AlarmName"],
                "state": body["NewStateValue"],
            }
            self._deliver_async("alarm", origin, message, events.malformed_notification)

    def _launch(self, step: Step) -> str:
        spec = next(a for a in self.history.arrays if a.array_id == step.array)
        tags = {
            "spawn:managed": "true",
            "spawn:job-array-id": spec.array_id,
            "spawn:job-array-name": spec.name,
            "spawn:job-array-size": str(spec.size),
            "spawn:job-array-index": str(step.index),
            "spawn:iam-user": spec.owner,
        }
        if step.index in spec.opted_out:
            tags["spawn:monitoring"] = "off"
        request: dict[str, Any] = {
            "ImageId": "ami-12c6146b",
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": spec.instance_type,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if spec.spot:
            request["InstanceMarketOptions"] = {"MarketType": "spot"}
        reservation = self.aws.ec2.run_instances(**request)
        return str(reservation["Instances"][0]["InstanceId"])

    def _state(self, key: tuple[str, int], state: str, now: datetime) -> None:
        self._ec2_event("state", key, now, {"state": state})

    def _ec2_event(
        self, kind: str, key: tuple[str, int], now: datetime, detail: dict[str, str]
    ) -> None:
        instance_id = self.ids[key]
        origin = f"{kind}-{next(self.ids_made)}"
        event = events.ec2_event(kind, instance_id, now, origin, **detail)
        self.ledger.events[origin] = {
            "kind": kind,
            "instance_id": instance_id,
            # The event's time, to the second, as EC2 stamps it.
            "ms": int(now.timestamp()) * 1000,
            "managed": self.history.managed(*key),
            "array_id": key[0],
            **detail,
        }
        if kind == "state":
            self._deliver_sqs(origin, event)
        else:
            self._deliver_async(kind, origin, event, events.malformed_ec2_event)

    def _write_row(self, key: tuple[str, int], values: dict[str, Any], now: datetime) -> None:
        """A worker's PutItem of its row (SPEC §4), and the stream record it makes."""
        instance_id = self.ids[key]
        row = {
            "array_id": key[0],
            "task_index": key[1],
            "status": values["status"],
            "tasks_completed": values["tasks_completed"],
            "tasks_total": values["tasks_total"],
            "last_update": values.get("last_update", events.stamp(now)),
            "instance_id": instance_id,
            "hostname": f"ip-10-0-{key[1] // 250}-{key[1] % 250}",
        }
        item = {k: _serialize(v) for k, v in row.items()}
        self.aws.dynamodb.put_item(TableName=self.settings.progress_table, Item=item)
        self.ledger.rows_written[key] = row
        self._stream(key, item, now)

    def _stream(self, key: tuple[str, int], item: dict[str, Any] | None, now: datetime) -> None:
        old = self.images.get(key)
        if item is None:
            return
        self.images[key] = item
        sequence = str(next(self.sequence))
        data: dict[str, Any] = {
            "ApproximateCreationDateTime": int(now.timestamp()),
            "Keys": {"array_id": {"S": key[0]}, "task_index": {"N": str(key[1])}},
            "SequenceNumber": sequence,
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "NewImage": item,
        }
        if old is not None:
            data["OldImage"] = old
        record: dict[str, Any] = {
            "eventID": f"rec-{sequence}",
            "eventName": "MODIFY" if old else "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "dynamodb": data,
        }
        shard = STREAM_SHARDS[zlib.crc32(key[0].encode()) % len(STREAM_SHARDS)]
        origin = f"rec-{sequence}"
        self.ledger.events[origin] = {
            "kind": "record",
            "shard": shard,
            "sequence": sequence,
            "array_id": key[0],
        }
        visible = self.clock.time() + self.rng.uniform(0, 1)
        if self.rng.random() < self.options.odds.drop:
            self.ledger.faults["dropped stream record"] += 1
        else:
            self.ledger.delivered.add(origin)
            self.shards[shard].append(Record(record, visible, malformed=False))
        if self.rng.random() < self.options.odds.malformed:
            broken = events.malformed_record(record, self.rng)
            self.ledger.malformed_kinds["stream record"] += 1
            self.shards[shard].append(Record(broken, visible, malformed=True))

    def observe_handler_writes(self) -> None:
        """Stream records for the rows the handlers changed (lost marks)."""
        for key in sorted(self.touched):
            found = self.aws.dynamodb.get_item(
                TableName=self.settings.progress_table,
                Key={"array_id": {"S": key[0]}, "task_index": {"N": str(key[1])}},
                ConsistentRead=True,
            ).get("Item")
            if found is not None and found != self.images.get(key):
                self._stream(key, found, self.clock.now())
        self.touched.clear()

    # --- delivery faults ------------------------------------------------------------

    def _copies(self) -> int:
        if self.rng.random() < self.options.odds.duplicate:
            return 2
        return 1

    def _visible(self) -> float:
        return self.clock.time() + self.rng.uniform(0, self.options.odds.reorder_window)

    def _deliver_sqs(self, origin: str, event: dict[str, Any]) -> None:
        odds = self.options.odds
        if self.rng.random() < odds.drop:
            self.ledger.faults["dropped state change"] += 1
        else:
            copies = self._copies()
            self.ledger.faults["duplicated"] += copies - 1
            self.ledger.delivered.add(origin)
            for _ in range(copies):
                key = f"msg-{next(self.ids_made)}"
                body = json.dumps(event)
                self.lifecycle_queue.append(Delivery(key, origin, body, self._visible(), False))
        if self.rng.random() < odds.malformed:
            key = f"msg-{next(self.ids_made)}"
            body = events.malformed_ec2(event, self.rng)
            self.ledger.malformed_kinds["state change"] += 1
            self.lifecycle_queue.append(Delivery(key, origin, body, self._visible(), True))

    def _deliver_async(
        self, kind: str, origin: str, payload: Any, broken: Callable[[Any, random.Random], Any]
    ) -> None:
        copies = self._copies()
        self.ledger.faults["duplicated"] += copies - 1
        self.ledger.delivered.add(origin)
        for _ in range(copies):
            key = f"inv-{next(self.ids_made)}"
            self.async_queue.append((kind, Delivery(key, origin, payload, self._visible(), False)))
        if self.rng.random() < self.options.odds.malformed:
            key = f"inv-{next(self.ids_made)}"
            bad = broken(payload, self.rng)
            self.ledger.malformed_kinds[kind] += 1
            self.async_queue.append((kind, Delivery(key, origin, bad, self._visible(), True)))

    # --- the handlers, invoked as Lambda invokes them ---------------------------------

    @contextmanager
    def invocation(self, handler: str, calls: int = 40) -> Iterator[None]:
        """One invocation of a handler, which crashes now and then after some calls."""
        crash = self.rng.random() < self.options.odds.crash
        if crash:
            self.http.arm_crash(self.rng.randint(1, calls))
        try:
            yield
        except Crash as exc:
            self.ledger.crashes[handler] += 1
            self.ledger.crash_after[str(exc).rsplit(" ", 1)[-1]] += 1
            raise
        finally:
            self.http.disarm()
            self.observe_handler_writes()

    def lifecycle_round(self) -> bool:
        now = self.clock.time()
        due = sorted((m for m in self.lifecycle_queue if m.visible_at <= now), key=_order)
        batch = due[:LIFECYCLE_BATCH]
        if not batch or not batch_due(
            len(batch), LIFECYCLE_BATCH, batch[0].visible_at, LIFECYCLE_WINDOW, now
        ):
            return False
        chosen = {id(m) for m in batch}
        self.lifecycle_queue = [m for m in self.lifecycle_queue if id(m) not in chosen]
        for m in batch:
            m.attempts += 1
            self.ledger.deliveries["state change"] += 1
            if m.malformed:
                self.ledger.malformed[m.key] += 1
        failed: set[str] | None
        reason = "reported failed by the handler (batchItemFailures)"
        try:
            with self.invocation("lifecycle", calls=4 * len(batch)):
                outcome = self.lifecycle.handle([Message(m.key, m.body) for m in batch])
            failed = set(outcome.failed)
        except Crash as exc:
            failed = None
            reason = f"handler crashed ({exc})"
        _, again = sqs_settle(batch, lambda m: m.key, failed)
        for m in again:
            if m.attempts >= self.max_receives:
                self._dead_letter("LifecycleDeadLetterQueue", m.origin, m.body, reason)
            else:
                m.visible_at = self.clock.time() + self.visibility
                self.lifecycle_queue.append(m)
        return True

    def async_round(self) -> bool:
        now = self.clock.time()
        due = [(k, d) for k, d in self.async_queue if d.visible_at <= now]
        if not due:
            return False
        due.sort(key=lambda kd: _order(kd[1]))
        kind, delivery = due[0]
        self.async_queue.remove((kind, delivery))
        delivery.attempts += 1
        self.ledger.deliveries[kind] += 1
        if delivery.malformed:
            self.ledger.malformed[delivery.key] += 1
        self.rejections.current = delivery.key
        try:
            with self.invocation(kind, calls=8):
                self._invoke(kind, delivery.body)
            if not delivery.malformed:
                self.ledger.completed.add(delivery.origin)
        except (Exception, Crash) as exc:  # Lambda retries an asynchronous invocation on any error
            delay = async_retry_delay(delivery.attempts)
            if delay is None:
                reason = f"{type(exc).__name__}: {exc}"
                self._dead_letter("FailedEventsQueue", delivery.origin, delivery.body, reason)
            else:
                delivery.visible_at = self.clock.time() + delay
                self.async_queue.append((kind, delivery))
        finally:
            self.rejections.current = None
        return True

    def _invoke(self, kind: str, body: Any) -> None:
        """What `app.py` does with each event (its handlers are this thin)."""
        if kind == "alarm":
            self.notifications.handle(body, self.infra.arns["AlertsTopic"])
            return
        try:
            if kind == "warning":
                self.interruptions.on_warning(body)
            else:
                self.interruptions.on_rebalance(body)
        except MalformedEvent as exc:
            logger.error(f"malformed {kind}", extra={"reason": str(exc)})

    def stream_round(self) -> bool:
        did = False
        for shard, records in self.shards.items():
            now = self.clock.time()
            batch = [r for r in records[:STREAM_BATCH] if r.visible_at <= now]
            if not batch or not batch_due(
                len(batch), STREAM_BATCH, batch[0].visible_at, self.stream_window, now
            ):
                continue
            did = True
            for r in batch:
                r.attempts += 1
                self.ledger.deliveries["stream record"] += 1
                if r.malformed:
                    self.ledger.malformed[r.record["eventID"]] += 1
            event = stream_event(
                [r.record for r in batch],
                self.infra.stream_arns["ProgressTable"],
                shard,
                self.window,
            )
            done = len(batch)
            reason = ""
            try:
                with self.invocation("progress_stream", calls=2 * len(batch)):
                    response = self.aggregator.handle_stream(event)
                failures = reported_failures(response)
                if failures:
                    sequences = [r.record["dynamodb"].get("SequenceNumber") for r in batch]
                    done = stream_resume(sequences, failures)
                    reason = "batchItemFailures"
            except Crash as exc:
                done, reason = 0, f"handler crashed ({exc})"
            if done == len(batch) and self.rng.random() < self.options.odds.duplicate:
                # The answer got lost: Lambda delivers the same batch again.
                self.ledger.faults["duplicated"] += len(batch)
                for r in batch:
                    if r.malformed:
                        self.ledger.malformed[r.record["eventID"]] += 1
                with suppress(Crash), self.invocation("progress_stream", calls=2 * len(batch)):
                    self.aggregator.handle_stream(event)
            del records[:done]
            if done < len(batch):
                head = records[0]
                if head.attempts > self.stream_retries:
                    for r in records[: len(batch) - done]:
                        self._dead_letter(
                            "FailedEventsQueue", r.record["eventID"], r.record, reason
                        )
                    del records[: len(batch) - done]
                else:
                    for r in records[: len(batch) - done]:
                        r.visible_at = self.clock.time() + 1
        return did

    def tick(self) -> None:
        try:
            with self.invocation("progress_tick"):
                self.ticker.tick(self.clock.now())
        except (Exception, Crash):
            # A scheduled run that fails is over; the next one starts afresh.
            self.ledger.failed_runs["progress_tick"] += 1

    def reconcile(self) -> int:
        """One scheduled run; returns how many creations it deferred (-1 if it crashed)."""
        try:
            with self.invocation("reconcile", calls=200):
                # No grace period: the replay's queue is not SQS (backlog None).
                report = self.reconciler.reconcile_with(
                    budget_seconds=RECONCILE_TIMEOUT * 0.7, backlog=None
                )
        except (Exception, Crash):
            self.ledger.failed_runs["reconcile"] += 1
            return -1
        return report.deferred

    def _dead_letter(self, queue: str, origin: str, body: Any, reason: str) -> None:
        """What a Lambda on-failure destination or an SQS redrive leaves: the event and,
        for destinations, why (the DLQ's reason is kept as a message attribute here)."""
        self.session.client("sqs").send_message(
            QueueUrl=self.infra.queue_urls[queue],
            MessageBody=json.dumps({"origin": origin, "event": body}, default=str),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
        )
        self.ledger.faults[f"sent to {queue}"] += 1

    # --- the loop -----------------------------------------------------------------------

    def pending(self) -> bool:
        return bool(self.lifecycle_queue or self.async_queue or any(self.shards.values()))

    def next_due(self) -> float | None:
        """When the next invocation is due: a batch's window closes when its oldest
        message has waited the batching window."""
        times = [m.visible_at + LIFECYCLE_WINDOW for m in self.lifecycle_queue]
        times += [d.visible_at for _, d in self.async_queue]
        times += [
            r.visible_at + self.stream_window
            for records in self.shards.values()
            for r in records[:1]
        ]
        return min(times) if times else None

    def deliver(self) -> bool:
        did = self.lifecycle_round()
        did = self.async_round() or did
        return self.stream_round() or did


def _order(delivery: Delivery) -> tuple[float, str]:
    return (delivery.visible_at, delivery.key)


def run(options: Options) -> tuple[World, Observed]:
    """Replay a history on moto in-process and settle; returns the world and what moto
    holds afterwards, for `chaos.invariants.check`."""
    from moto import mock_aws

    history = chaos_history(options)
    # moto draws instance ids from `random`, and the handlers' jitter too: seeded, the
    # whole replay is one deterministic function of the seed.
    random.seed(options.seed)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        infra = provision(session)
        clock = ReplayClock(T0)
        world = World(options, history, session, infra, clock)
        with (
            _capturing(world.rejections),
            mock.patch("botocore.endpoint.time.sleep", clock.sleep),
            redirect_stdout(world.metrics),
        ):
            _play(world)
            _settle(world)
        return world, observe(world)


def chaos_history(options: Options) -> History:
    from chaos.history import generate

    return generate(options.seed, options.instances)


@contextmanager
def _capturing(handler: logging.Handler) -> Iterator[None]:
    names = ["chalicelib", "chaos"] + [
        n for n in logging.root.manager.loggerDict if n.startswith("chalicelib.")
    ]
    loggers = [logging.getLogger(n) for n in names]
    for log in loggers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for log in loggers:
            log.removeHandler(handler)


def _play(world: World) -> None:
    start = world.clock.time()
    next_tick = start + TICK_EVERY
    next_reconcile = start + RECONCILE_EVERY
    while not world.world_done() or world.pending():
        world.happen_until(world.clock.time())
        now = world.clock.time()
        if world.options.recount and now >= next_tick:
            world.tick()
            next_tick = world.clock.time() + TICK_EVERY
        if world.options.reconciler and now >= next_reconcile:
            world.reconcile()
            next_reconcile = world.clock.time() + RECONCILE_EVERY
        if world.deliver():
            continue
        # A schedule left out on purpose is never due.
        candidates = [
            t
            for t, on in (
                (next_tick, world.options.recount),
                (next_reconcile, world.options.reconciler),
            )
            if on
        ]
        if not world.world_done():
            candidates.append(start + world.history.steps[world.position].at)
        due = world.next_due()
        if due is not None:
            candidates.append(due)
        world.clock.advance_to(min(candidates))


def _drain(world: World) -> None:
    while world.pending():
        if not world.deliver():
            due = world.next_due()
            if due is not None:
                world.clock.advance_to(due)


def _settle(world: World) -> None:
    """Deliver what is left, then let time pass: the reconciler runs until it defers
    nothing, and the tick (with the clock past the recount interval) recounts."""
    _drain(world)
    for _ in range(SETTLE_ROUNDS):
        world.clock.sleep(world.settings.recount_every_seconds + 120)
        if world.options.reconciler:
            for _ in range(20):
                if world.reconcile() == 0:
                    break
                world.clock.sleep(RECONCILE_EVERY)
            _drain(world)
        if world.options.recount:
            world.tick()
            _drain(world)
            world.clock.sleep(TICK_EVERY)
            world.tick()
            _drain(world)
