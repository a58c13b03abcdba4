"""Spot interruption warnings and rebalance recommendations (SPEC §3, §6, §8).

An interruption is counted exactly once per instance however often EventBridge
delivers the warning: one DynamoDB transaction marks the instance interrupted (only
if it was not already) and adds to the counters, so either both happen or neither.
Only a first count publishes metrics; the alert is sent once and remembered, so a
retry after a failed publish sends it, and a duplicate does not send it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.alerts import Alert, AlertPublisher
from chalicelib.ec2_events import SpotWarning, iso, parse_rebalance, parse_spot_warning
from chalicelib.instances import GONE_RETENTION_SECONDS, Registry, describe
from chalicelib.metrics import emit
from chalicelib.settings import Settings
from chalicelib.stats import REBALANCE_TOTAL, increment, interruption_increments

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

NAMESPACE = "Spawn/SpotInterruptions"
_serialize = TypeSerializer().serialize


@dataclass(frozen=True)
class Owner:
    """Whether an instance is managed, and the array it belongs to."""

    managed: bool
    array_id: str | None = None
    array_index: int | None = None
    instance_type: str | None = None


@dataclass
class Interruptions:
    """Handles spot interruption warnings and rebalance recommendations.

    Args:
        settings: managed tags, and whether unmanaged interruptions count.
        dynamodb: a DynamoDB client (instances and stats tables).
        ec2: an EC2 client, for the tags of instances not yet registered.
        registry: the instances table.
        alerts: the alert publisher.
    """

    settings: Settings
    dynamodb: DynamoDBClient
    ec2: EC2Client
    registry: Registry
    alerts: AlertPublisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

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
        if self._count(warning, owner, array_id):
            emit(NAMESPACE, {"Count": (MetricUnit.Count, 1)})
            if array_id:
                emit(NAMESPACE, {"Count": (MetricUnit.Count, 1)}, {"ArrayId": array_id})
            outcome = "counted"
        else:
            outcome = "duplicate"
        row = self.registry.get(warning.instance_id) or {}
        if owner.managed and not row.get("interruption_alerted"):
            self.alerts.publish(_alert(warning, owner))
            self.registry.update(warning.instance_id, {"interruption_alerted": True})
        logger.info(
            "spot interruption warning",
            extra={"instance_id": warning.instance_id, "outcome": outcome},
        )
        return outcome

    def on_rebalance(self, event: Any) -> str:
        recommendation = parse_rebalance(event)
        first = self.registry.update(
            recommendation.instance_id,
            {"rebalance_at": iso(recommendation.time)},
            "attribute_not_exists(#rebalance_at)",
        )
        if first is None:
            return "duplicate"
        self.dynamodb.update_item(**increment(self.settings.stats_table, REBALANCE_TOTAL)["Update"])
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
        )

    def _count(self, warning: SpotWarning, owner: Owner, array_id: str | None) -> bool:
        """Mark the instance interrupted and add to the counters, atomically, once."""
        values: dict[str, Any] = {
            "interrupted_at": iso(warning.time),
            "interruption_action": warning.action,
            "managed": owner.managed,
        }
        if array_id:
            values["array_id"] = array_id
        if not owner.managed:
            values["expires_at"] = int(self.clock().timestamp()) + GONE_RETENTION_SECONDS
        names = {f"#{k}": k for k in values}
        mark = {
            "Update": {
                "TableName": self.settings.instances_table,
                "Key": {"instance_id": {"S": warning.instance_id}},
                "UpdateExpression": "SET " + ", ".join(f"#{k} = :{k}" for k in values),
                "ConditionExpression": "attribute_not_exists(#interrupted_at)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":{k}": _serialize(v) for k, v in values.items()},
            }
        }
        counters = interruption_increments(self.settings.stats_table, warning.time, array_id)
        try:
            self.dynamodb.transact_write_items(TransactItems=[mark, *counters])  # type: ignore[list-item]
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True


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
    )
