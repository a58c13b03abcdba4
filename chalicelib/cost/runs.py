"""Billable runs, recorded on each instance's registry row.

Every state change adds its time to a number set on the row: `cost_starts` (running)
or `cost_ends` (stopping, stopped, shutting-down, terminated). Sets make the record
independent of order and repeats: a duplicate adds nothing, a late event lands where it
belongs, and `billing.runs` pairs them. The reconciler adds what events missed. At
`running`, the attached EBS volumes are read once from EC2 (`DescribeVolumes`, one call
per 200 instances) and kept on the row beside the price drivers the registry keeps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.core.batching import chunked, conditional_check_failed
from chalicelib.cost.billing import END_STATES

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

FILTER_VALUES_MAX = 200
_serialize = TypeSerializer().serialize
# The time EC2 gives in a StateTransitionReason ("User initiated (2026-12-04 02:13:16 GMT)").
_REASON_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


def transition_ms(reason: str | None) -> int | None:
    """When EC2 says the instance changed state, from its StateTransitionReason."""
    match = _REASON_TIME.search(reason or "")
    if match is None:
        return None
    try:
        at = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}+00:00")
    except ValueError:
        return None
    return int(at.timestamp() * 1000)


def attached_volumes(
    ec2: EC2Client, instance_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """EBS volumes attached to each instance: type, size (GiB), IOPS and throughput."""
    found: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunked(sorted(set(instance_ids)), FILTER_VALUES_MAX):
        pages = ec2.get_paginator("describe_volumes").paginate(
            Filters=[{"Name": "attachment.instance-id", "Values": list(chunk)}]
        )
        for page in pages:
            for volume in page.get("Volumes", []):
                described = {
                    "type": volume.get("VolumeType"),
                    "size": int(volume.get("Size") or 0),
                    "iops": int(volume.get("Iops") or 0),
                    "throughput": int(volume.get("Throughput") or 0),
                }
                for attachment in volume.get("Attachments", []):
                    instance_id = str(attachment.get("InstanceId"))
                    if instance_id in chunk:
                        found.setdefault(instance_id, []).append(described)
    return found


class RunLog:
    """Adds run starts and ends (and volumes) to registry rows.

    Args:
        dynamodb: a DynamoDB client.
        table: the instances table (`INSTANCES_TABLE`).
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def note(
        self,
        instance_id: str,
        state: str,
        at_ms: int,
        volumes: Sequence[Mapping[str, Any]] | None = None,
        drivers: Mapping[str, Any] | None = None,
    ) -> bool:
        """Add one state change's time to the row, and at running the volumes and the
        price drivers (`registry.cost_drivers`), kept as first captured.

        Only an existing row is touched (the registry wrote it first), so a late event
        for an instance whose row expired creates nothing. Returns whether it wrote.
        """
        if state == "running":
            attribute = "cost_starts"
        elif state in END_STATES:
            attribute = "cost_ends"
        else:
            return False
        expression = f"ADD #{attribute} :at"
        names = {f"#{attribute}": attribute, "#state": "state"}
        values: dict[str, Any] = {":at": {"NS": [str(int(at_ms))]}}
        if state == "terminated":
            # Storage is billed until the instance (and its volumes) is gone.
            expression += ", #cost_terminations :at"
            names["#cost_terminations"] = "cost_terminations"
        sets = []
        if volumes is not None:
            sets.append("#cost_volumes = if_not_exists(#cost_volumes, :volumes)")
            names["#cost_volumes"] = "cost_volumes"
            values[":volumes"] = {"L": [_volume_item(v) for v in volumes]}
        if drivers:
            sets.append("#cost_facts = if_not_exists(#cost_facts, :facts)")
            names["#cost_facts"] = "cost_facts"
            values[":facts"] = {"M": {k: _serialize(v) for k, v in drivers.items()}}
        if sets:
            expression += " SET " + ", ".join(sets)
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"instance_id": {"S": instance_id}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#state)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if conditional_check_failed(exc):
                return False
            raise
        return True

    def note_changes(
        self,
        ec2: EC2Client | None,
        changes: Iterable[tuple[str, str, int]],
        running: Iterable[str],
        drivers: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> set[str]:
        """Note many changes (instance id, state, epoch ms), with the volumes of the
        instances in `running` (running in EC2) read in one `DescribeVolumes` per 200,
        and each instance's price `drivers`. Returns the instances whose note failed
        (their messages should be delivered again)."""
        volumes: dict[str, list[dict[str, Any]]] = {}
        failed: set[str] = set()
        running = sorted(set(running))
        if ec2 is not None and running:
            try:
                volumes = attached_volumes(ec2, running)
            except ClientError:
                # Priced without storage until the reconciler's next capture.
                logger.exception("volumes not read", extra={"instances": len(running)})
        for instance_id, state, at_ms in changes:
            try:
                self.note(
                    instance_id,
                    state,
                    at_ms,
                    volumes.get(instance_id, []) if instance_id in running else None,
                    (drivers or {}).get(instance_id) if state == "running" else None,
                )
            except ClientError:
                logger.exception("run not recorded", extra={"instance_id": instance_id})
                failed |= {instance_id}
        return failed


def _volume_item(volume: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "M": {
            "type": {"S": str(volume.get("type") or "unknown")},
            "size": {"N": str(int(volume.get("size") or 0))},
            "iops": {"N": str(int(volume.get("iops") or 0))},
            "throughput": {"N": str(int(volume.get("throughput") or 0))},
        }
    }
