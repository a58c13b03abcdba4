"""EC2 state changes → registry and per-instance alarms, a whole SQS batch at a time.

Parses the batch, keeps the newest change per instance, reads the tags of the pending
and running ones in one call, records changes only if newer, then puts and deletes
alarms (paced), rereading the registry after each call until the alarms agree with it;
failed instances' messages are reported back for redelivery. In `fleet-query` mode it
makes no alarm calls for instances the query selects. Details: docs/architecture.md
("Lifecycle is buffered in SQS") and docs/alarm-modes.md.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.alarms.fleet_query import query_selects
from chalicelib.alarms.modes import AlarmModes
from chalicelib.alarms.per_instance import AlarmStore, Watched, alarm_names
from chalicelib.core.settings import Settings
from chalicelib.cost.runs import RunLog
from chalicelib.fleet.capacity import CapacityLedger
from chalicelib.fleet.events import (
    MalformedEvent,
    StateChange,
    latest_per_instance,
    parse_state_change,
)
from chalicelib.fleet.registry import (
    LIVE_STATES,
    InstanceFacts,
    Registry,
    cost_drivers,
    describe,
)
from chalicelib.fleet.stats import Stats
from chalicelib.progress.workers import ProgressRows

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

ALARMS_REMOVED_ON = frozenset({"stopped", "terminated"})
# Each round follows another copy's newer change; more than this and the changes come
# faster than alarm calls can follow, which the reconciler's next run settles.
SETTLE_ROUNDS = 4


@dataclass(frozen=True)
class Message:
    """One buffered event: the SQS message id and its body (the EventBridge event)."""

    message_id: str
    body: str


@dataclass
class BatchOutcome:
    """What a batch did; `failed` lists the message ids SQS should deliver again."""

    failed: list[str] = field(default_factory=list)
    malformed: int = 0
    stale: int = 0
    recorded: int = 0
    alarms_put: int = 0
    alarms_deleted: int = 0

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        """The Lambda partial-batch response for an SQS event source."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed]}


def parse_messages(messages: Sequence[Message]) -> tuple[list[tuple[str, StateChange]], int]:
    """Parsed state changes with their message ids, and how many were malformed."""
    parsed: list[tuple[str, StateChange]] = []
    malformed = 0
    for message in messages:
        try:
            parsed.append((message.message_id, parse_state_change(json.loads(message.body))))
        except (MalformedEvent, json.JSONDecodeError) as exc:
            malformed += 1
            logger.error(
                "dropping malformed state-change message",
                extra={"message_id": message.message_id, "reason": str(exc)},
            )
    return parsed, malformed


@dataclass
class Lifecycle:
    """Applies batches of state changes.

    Args:
        settings: which tags mean managed / opted out.
        ec2: an EC2 client, for tags.
        registry: the instances table.
        alarms: CloudWatch alarm I/O.
        arrays: where array names and sizes from spawn's tags are kept (optional).
        workers: the progress table, to mark lost the worker of an instance that
            terminated without a final report (optional).
        modes: the alarm mode in force (optional: without it, per-instance alarms).
        capacity: counts ended runs' time by type and zone (optional).
        runs: where billable runs are noted (optional; `chalicelib.cost.runs`).
    """

    settings: Settings
    ec2: EC2Client
    registry: Registry
    alarms: AlarmStore
    arrays: Stats | None = None
    workers: ProgressRows | None = None
    modes: AlarmModes | None = None
    capacity: CapacityLedger | None = None
    runs: RunLog | None = None

    def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        parsed, malformed = parse_messages(messages)
        outcome = BatchOutcome(malformed=malformed)
        ids_by_instance: dict[str, list[str]] = defaultdict(list)
        for message_id, change in parsed:
            ids_by_instance[change.instance_id].append(message_id)
        latest = latest_per_instance([change for _, change in parsed])
        outcome.stale += len(parsed) - len(latest)

        # Tags are read for launching instances too, so a pending managed instance is
        # recorded as managed and counts in `/fleet` (one call for the whole batch).
        coming_up = [i for i, c in latest.items() if c.state in LIVE_STATES]
        if self.runs is not None:
            # A run that ended within the batch is priced from what EC2 says of it too.
            coming_up += [c.instance_id for _, c in parsed if c.state == "running"]
        facts = describe(self.ec2, coming_up) if coming_up else {}
        if self.arrays is not None:
            # Name, declared size and owner of each array coming up, so progress can
            # count the workers that have not reported yet and the API can tell whose
            # array it is.
            self.arrays.register_arrays(facts.values(), self.settings)

        to_put: list[tuple[Watched, StateChange]] = []
        to_delete: dict[str, list[str]] = {}
        for instance_id, change in sorted(latest.items()):
            try:
                action = self._record(change, facts.get(instance_id), outcome)
            except Exception:
                logger.exception(
                    "recording state change failed", extra={"instance_id": instance_id}
                )
                outcome.failed.extend(ids_by_instance[instance_id])
                continue
            if isinstance(action, Watched):
                to_put.append((action, change))
            elif action:
                to_delete[instance_id] = alarm_names(instance_id)

        if self.runs is not None:
            # Every change in the batch, stale ones too: a run's end is a fact whatever
            # order it arrives in (see chalicelib.cost.runs).
            noted = [(c.instance_id, c.state, c.epoch_ms) for _, c in parsed]
            ran = {i for i, state, _ in noted if state == "running"}
            up = [i for i, f in facts.items() if f.state == "running" and i in ran]
            drivers = {i: cost_drivers(f, self.settings) for i, f in facts.items()}
            for instance_id in self.runs.note_changes(self.ec2, noted, up, drivers):
                outcome.failed.extend(ids_by_instance[instance_id])

        alarm_calls = to_put or to_delete
        if alarm_calls and self.modes is not None and self.modes.query_alarms_in_force():
            # The query alarms watch what their query selects; a managed instance it
            # does not (tagged only `spawn=true`) still gets its own alarms. Deletes are
            # left to the reconciler: tags are not read for a stopping instance, so
            # which instances have alarms of their own is not known here.
            to_put = [
                (watched, change)
                for watched, change in to_put
                if (found := facts.get(watched.instance_id)) is not None
                and not query_selects(found.tags, self.settings)
            ]
            to_delete = {}
            if not to_put:
                return outcome
        self.alarms.expect(len(to_put))
        for watched, _ in to_put:
            try:
                # A newer change may have been recorded while earlier puts were paced.
                if not self._still_watched(watched.instance_id):
                    continue
                self.alarms.put([watched])
                outcome.alarms_put += len(alarm_names(watched.instance_id))
                self._settle(watched, put=True, outcome=outcome)
            except Exception:
                logger.exception(
                    "creating alarms failed", extra={"instance_id": watched.instance_id}
                )
                outcome.failed.extend(ids_by_instance[watched.instance_id])
        if to_delete:
            names = [name for group in to_delete.values() for name in group]
            try:
                self.alarms.delete(names)
                outcome.alarms_deleted += len(names)
                rows = self.registry.get_many(to_delete)
            except Exception:
                logger.exception("deleting alarms failed", extra={"instances": len(to_delete)})
                for instance_id in to_delete:
                    outcome.failed.extend(ids_by_instance[instance_id])
                return outcome
            for instance_id in to_delete:
                row = rows.get(instance_id, {})
                if not _watched(row):
                    continue
                try:
                    again = Watched(instance_id, row.get("array_id"))
                    self._settle(again, put=False, outcome=outcome)
                except Exception:
                    logger.exception("restoring alarms failed", extra={"instance_id": instance_id})
                    outcome.failed.extend(ids_by_instance[instance_id])
        return outcome

    def _still_watched(self, instance_id: str) -> bool:
        return _watched(self.registry.get(instance_id) or {})

    def _settle(self, watched: Watched, put: bool, outcome: BatchOutcome) -> None:
        """After a put (`put`) or a delete of an instance's alarms, read the registry and
        correct the alarms until they agree with it (see the module docstring)."""
        names = alarm_names(watched.instance_id)
        for _ in range(SETTLE_ROUNDS):
            wanted = self._still_watched(watched.instance_id)
            if wanted == put:
                return
            if wanted:
                self.alarms.put([watched])
                outcome.alarms_put += len(names)
            else:
                self.alarms.delete(names)
                outcome.alarms_deleted += len(names)
            put = wanted
        logger.warning(
            "alarms of an instance kept changing; the reconciler settles them",
            extra={"instance_id": watched.instance_id},
        )

    def _record(
        self, change: StateChange, facts: InstanceFacts | None, outcome: BatchOutcome
    ) -> Watched | bool | None:
        """Record one change; returns alarms to create, True to delete them, or None."""
        managed: bool | None = None
        current: InstanceFacts | None = None
        if change.state == "pending":
            # Without facts (gone from EC2 already, or moved past launching) the change
            # is recorded as before, its managed flag left as it was.
            if facts is not None and facts.state in LIVE_STATES:
                current = facts
                managed = facts.managed(self.settings)
        elif change.state == "running":
            if facts is None:
                logger.info(
                    "instance no longer in EC2; nothing to watch",
                    extra={"instance_id": change.instance_id},
                )
                return None
            if facts.state not in LIVE_STATES:
                # EC2 has moved on already; the event for that state does the work.
                logger.info(
                    "late running event",
                    extra={"instance_id": change.instance_id, "ec2_state": facts.state},
                )
                return None
            current = facts
            managed = facts.managed(self.settings)
        previous = self.registry.record(change, current, managed)
        if previous is None:
            outcome.stale += 1
            return None
        outcome.recorded += 1
        if self.capacity is not None:  # an ended run's instance-hours (docs/capacity.md)
            self.capacity.on_change(change.instance_id, change.state)
        was_managed = bool(previous.get("managed"))
        if change.state == "terminated" and self.workers is not None:
            # A retried message repeats this (the record accepts an exact repeat). An
            # unmanaged instance may still have run a worker started by hand: its row
            # is found by instance id, one Query.
            self.workers.mark_gone_instance(
                {**previous, "instance_id": change.instance_id}, change.time
            )
        if change.state == "running":
            if managed and current is not None:
                return Watched(change.instance_id, current.array_id)
            return was_managed  # opted out while stopped: its alarms go
        return change.state in ALARMS_REMOVED_ON and was_managed


def _watched(row: Mapping[str, Any]) -> bool:
    """The registry says running and managed (this run or a newer one)."""
    return row.get("state") == "running" and row.get("managed") is True


def queue_backlog(sqs: SQSClient, queue: str) -> int:
    """Messages in the lifecycle queue, waiting or being handled (SQS's approximate
    counts, which is all the reconciler's grace period needs)."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    ).get("Attributes", {})
    return sum(int(value) for value in attributes.values())
