"""Spot interruption warnings and rebalance recommendations.

An interruption counts exactly once however often EventBridge delivers it: one
DynamoDB transaction marks the instance interrupted (only if this warning comes two
minutes or more after the last one counted, by EC2's time) and adds to the sharded
counters; conflicts are retried with jittered waits. Only a first count publishes
metrics, and the alert is sent once and remembered. Rebalance recommendations count
once per recorded run. Details: docs/architecture.md ("Spot interruptions ...").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.alerts.publish import Alert, AlertPublisher
from chalicelib.core.batching import transact_conflicts_retried
from chalicelib.core.observability import emit
from chalicelib.core.settings import Settings
from chalicelib.fleet.capacity import CapacityLedger
from chalicelib.fleet.counters import COUNTER_SHARDS, interruption_increments, rebalance_increments
from chalicelib.fleet.events import (
    SpotWarning,
    epoch_ms,
    iso,
    parse_rebalance,
    parse_spot_warning,
)
from chalicelib.fleet.registry import GONE_RETENTION_SECONDS, Registry, describe

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

NAMESPACE = "Spawn/SpotInterruptions"
# EC2's notice ahead of an interruption: no new interruption can be warned sooner.
INTERRUPTION_NOTICE = timedelta(minutes=2)
# Waits before retrying a conflicting transaction: random up to 25 ms, doubling, at most
# 1 s; ten attempts wait about 2.5 s on average, 4.6 s at most, well inside the timeout.


@dataclass(frozen=True)
class Owner:
    """Whether an instance is managed, the array it belongs to, and who launched it
    (`user`, the normalised `spawn:iam-user`)."""

    managed: bool
    array_id: str | None = None
    array_index: int | None = None
    instance_type: str | None = None
    user: str | None = None
    availability_zone: str | None = None


@dataclass
class Interruptions:
    """Handles spot interruption warnings and rebalance recommendations.

    Args:
        settings: managed tags, and whether unmanaged interruptions count.
        dynamodb: a DynamoDB client (instances and stats tables).
        ec2: an EC2 client, for the tags of instances not yet registered.
        registry: the instances table.
        alerts: the alert publisher.
        clock / sleep: the current time and how to wait (injectable for tests).
        counter_shards: how many items each counter is split into (`COUNTER_SHARDS`;
            the readers in `chalicelib.fleet.stats` must use the same number).
    """

    settings: Settings
    dynamodb: DynamoDBClient
    ec2: EC2Client
    registry: Registry
    alerts: AlertPublisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    counter_shards: int = COUNTER_SHARDS
    capacity: CapacityLedger | None = None

    def on_warning(self, event: Any) -> str:
        """Count, record, publish and alert; returns what happened (for the log)."""
        warning = parse_spot_warning(event)
        owner = self._owner(warning.instance_id)
        if not owner.managed and not self.settings.count_unmanaged_interruptions:
            logger.info(
                "interruption of an unmanaged instance not counted",
                extra={"instance_id": warning.instance_id},
            )
            return "ignored"
        array_id = owner.array_id if owner.managed else None
        marks: dict[str, Any] = {
            "interrupted_at": iso(warning.time),
            "interruption_action": warning.action,
        }
        if array_id:
            marks["array_id"] = array_id
        user = owner.user if owner.managed else None
        if user:
            # The per-owner /fleet counts this instance's interruption from its row.
            marks["owner"] = user
        counters = interruption_increments(
            self.settings.stats_table,
            warning.instance_id,
            warning.time,
            array_id,
            user,
            self.counter_shards,
        )
        after_the_last = "attribute_not_exists(#interrupted_ms) OR #interrupted_ms <= :notice"
        notice = {"notice": epoch_ms(warning.time - INTERRUPTION_NOTICE)}
        if self._once(
            warning.instance_id,
            "interrupted_ms",
            warning.time,
            owner,
            marks,
            counters,
            after_the_last,
            notice,
        ):
            emit(NAMESPACE, {"Count": (MetricUnit.Count, 1)})
            if array_id:
                emit(NAMESPACE, {"Count": (MetricUnit.Count, 1)}, {"ArrayId": array_id})
            outcome = "counted"
        else:
            outcome = "duplicate"
        row = self.registry.get(warning.instance_id) or {}
        if self.capacity is not None:
            # By (type, zone) too, once (its own mark), after the sharded count; should it
            # fail, the fleet tick counts it (CapacityLedger.accrue_due), and the alert goes.
            try:
                self.capacity.count_interruption(row)
            except Exception:
                logger.exception(
                    "capacity interruption count failed; the fleet tick retries it",
                    extra={"instance_id": warning.instance_id},
                )
        interrupted_ms = row.get("interrupted_ms")
        if owner.managed and row.get("interruption_alerted_ms") != interrupted_ms:
            self.alerts.publish(_alert(warning, owner))
            self.registry.update(warning.instance_id, {"interruption_alerted_ms": interrupted_ms})
        logger.info(
            "spot interruption warning",
            extra={"instance_id": warning.instance_id, "outcome": outcome},
        )
        return outcome

    def on_rebalance(self, event: Any) -> str:
        """Count a rebalance recommendation once per instance and run, and publish it."""
        recommendation = parse_rebalance(event)
        owner = self._owner(recommendation.instance_id)
        if not owner.managed and not self.settings.count_unmanaged_interruptions:
            return "ignored"
        counters = rebalance_increments(
            self.settings.stats_table, recommendation.instance_id, self.counter_shards
        )
        marks = {"rebalance_at": iso(recommendation.time)}
        # Once per run: the first recommendation, or one in a run recorded as begun since.
        per_run = (
            "attribute_not_exists(#rebalance_ms) OR (#rebalance_ms < #running_since_ms"
            " AND :rebalance_ms >= #running_since_ms)"
        )
        if not self._once(
            recommendation.instance_id,
            "rebalance_ms",
            recommendation.time,
            owner,
            marks,
            counters,
            per_run,
        ):
            return "duplicate"
        emit(NAMESPACE, {"RebalanceRecommendations": (MetricUnit.Count, 1)})
        return "counted"

    def _owner(self, instance_id: str) -> Owner:
        row = self.registry.get(instance_id)
        if row is not None and "managed" in row:
            return Owner(
                bool(row["managed"]),
                row.get("array_id"),
                row.get("array_index"),
                row.get("instance_type"),
                row.get("owner"),
                row.get("availability_zone"),
            )
        facts = describe(self.ec2, [instance_id]).get(instance_id)
        if facts is None:
            return Owner(False)
        membership = facts.membership()
        return Owner(
            facts.managed(self.settings),
            facts.array_id,
            membership["array_index"],
            facts.instance_type,
            facts.owner,
            facts.availability_zone,
        )

    def _once(
        self,
        instance_id: str,
        field_ms: str,
        at: datetime,
        owner: Owner,
        marks: dict[str, Any],
        counters: list[dict[str, Any]],
        condition: str,
        condition_values: dict[str, Any] | None = None,
    ) -> bool:
        """Mark the instance (`field_ms` = `at`) and add to `counters`, atomically, if
        `condition` holds on the instance's item (`:{field_ms}` is `at`; other values
        are `condition_values`).

        Returns whether this call counted. Concurrent transactions on the same counters
        (a capacity reclaim interrupts many instances at once) are retried here.
        """
        at_ms = epoch_ms(at)
        values: dict[str, Any] = {**marks, field_ms: at_ms, "managed": owner.managed}
        if owner.managed:
            # `_owner` trusts a row that says `managed`: a row this creates before the
            # lifecycle records the instance (its `running` may wait in the queue) must
            # carry what the next warning needs, or that one counts in no array.
            values.update(
                array_id=owner.array_id,
                array_index=owner.array_index,
                instance_type=owner.instance_type,
                owner=owner.user,
                availability_zone=owner.availability_zone,
            )
        if not owner.managed:
            values["expires_at"] = int(self.clock().timestamp()) + GONE_RETENTION_SECONDS
        mark = {
            "Update": self.registry.update_request(instance_id, values, condition, condition_values)
        }
        return transact_conflicts_retried(self.dynamodb, [mark, *counters], self.sleep)


def _alert(warning: SpotWarning, owner: Owner) -> Alert:
    where = f" in {owner.array_id}" if owner.array_id else ""
    index = f" [{owner.array_index}]" if owner.array_index is not None else ""
    return Alert(
        event_type="spot_interruption",
        severity="warning",
        subject=(
            f"Spot interruption: {warning.instance_id}{index}{where}"
            f" will {warning.action} in ~2 min"
        ),
        details={
            "instance_id": warning.instance_id,
            "instance_action": warning.action,
            "array_index": owner.array_index,
            "instance_type": owner.instance_type,
            "warning_time": iso(warning.time),
        },
        array_id=owner.array_id,
        time=warning.time,
        # Kept in the launcher's own alert feed too (per-user isolation).
        owner=owner.user,
    )
