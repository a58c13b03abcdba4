"""Which instances are watched (SPEC §2), what EC2 says of them, and the registry.

The registry (`INSTANCES_TABLE`, one item per instance) records the newest state
change seen for each instance. Every write is conditional on the event being newer
than what is recorded, so EventBridge's duplicates and reordering cannot move an
instance backwards, and `terminated` is final.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.core.access import owner_key
from chalicelib.core.batching import batch_get, chunked, conditional_check_failed
from chalicelib.core.settings import Settings
from chalicelib.fleet.events import STATE_RANK, StateChange, iso, iso_ms

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

ARRAY_ID_TAG = "spawn:job-array-id"
ARRAY_NAME_TAG = "spawn:job-array-name"
ARRAY_SIZE_TAG = "spawn:job-array-size"
ARRAY_INDEX_TAG = "spawn:job-array-index"
# The launching principal's ARN, written by spawn on every instance (SPEC §7).
OWNER_TAG = "spawn:iam-user"
# spawn's per-instance spending cap in USD (SPEC §14: an array's budget is their sum).
COST_LIMIT_TAG = "spawn:cost-limit"
# EC2 accepts at most 200 values in one filter.
FILTER_VALUES_MAX = 200
GONE_RETENTION_SECONDS = 7 * 24 * 3600
LIVE_STATES = frozenset({"pending", "running"})
NOT_ENDED_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


@dataclass(frozen=True)
class InstanceFacts:
    """What `DescribeInstances` says of one instance."""

    instance_id: str
    state: str
    tags: Mapping[str, str]
    instance_type: str | None = None
    availability_zone: str | None = None
    lifecycle: str = "on-demand"
    launch_time: str | None = None
    # What else drives the price (SPEC §14): EC2's PlatformDetails, the tenancy, and
    # how many public IPv4 addresses it has.
    platform: str | None = None
    tenancy: str | None = None
    public_ipv4: int = 0
    # EC2's StateTransitionReason, e.g. "User initiated (2026-12-04 02:13:16 GMT)".
    state_reason: str | None = None

    def managed(self, settings: Settings) -> bool:
        """Carries a managed tag set to `true` and is not opted out (SPEC §2)."""
        return is_managed(self.tags, settings)

    @property
    def array_id(self) -> str | None:
        return self.tags.get(ARRAY_ID_TAG) or None

    @property
    def owner(self) -> str | None:
        """Who launched it: `spawn:iam-user`, normalised by `access.owner_key`."""
        return owner_key(self.tags.get(OWNER_TAG))

    def membership(self) -> dict[str, Any]:
        """Array membership from spawn's tags; malformed numbers are left out."""
        return {
            "array_id": self.array_id,
            "array_name": self.tags.get(ARRAY_NAME_TAG) or None,
            "array_size": _non_negative_int(self.tags.get(ARRAY_SIZE_TAG)),
            "array_index": _non_negative_int(self.tags.get(ARRAY_INDEX_TAG)),
        }


def is_managed(tags: Mapping[str, str], settings: Settings) -> bool:
    """SPEC §2: `spawn:managed=true` or `spawn=true`, unless `spawn:monitoring=off`."""
    if tags.get(settings.opt_out_tag, "").strip().lower() == "off":
        return False
    return any(tags.get(key, "").strip().lower() == "true" for key in settings.managed_tag_keys)


def _non_negative_int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def facts_from(instance: Mapping[str, Any]) -> InstanceFacts:
    """Build `InstanceFacts` from one `DescribeInstances` instance (tags may be absent)."""
    launch = instance.get("LaunchTime")
    return InstanceFacts(
        instance_id=instance["InstanceId"],
        state=instance.get("State", {}).get("Name", "unknown"),
        tags={t["Key"]: t["Value"] for t in instance.get("Tags") or []},
        instance_type=instance.get("InstanceType"),
        availability_zone=instance.get("Placement", {}).get("AvailabilityZone"),
        lifecycle="spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        launch_time=iso(launch) if launch is not None else None,
        platform=instance.get("PlatformDetails")
        or ("Windows" if instance.get("Platform") == "windows" else "Linux/UNIX"),
        tenancy=instance.get("Placement", {}).get("Tenancy") or "default",
        public_ipv4=1 if instance.get("PublicIpAddress") else 0,
        state_reason=instance.get("StateTransitionReason") or None,
    )


def _instances(ec2: EC2Client, filters: list[dict[str, Any]]) -> Iterator[InstanceFacts]:
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):  # type: ignore[arg-type]
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                yield facts_from(instance)


def describe(ec2: EC2Client, instance_ids: Iterable[str]) -> dict[str, InstanceFacts]:
    """Facts for many instances in as few calls as EC2 allows.

    Uses an `instance-id` filter rather than `InstanceIds`, which fails the whole call
    when any one instance no longer exists; missing instances are simply absent.
    """
    found: dict[str, InstanceFacts] = {}
    for chunk in chunked(sorted(set(instance_ids)), FILTER_VALUES_MAX):
        for facts in _instances(ec2, [{"Name": "instance-id", "Values": list(chunk)}]):
            found[facts.instance_id] = facts
    return found


def describe_managed_running(
    ec2: EC2Client, settings: Settings, states: Iterable[str] = ("running",)
) -> dict[str, InstanceFacts]:
    """Every managed instance in `states` (default running): one paginated listing per
    managed tag key, whatever the states.

    EC2 filters on the key only; the value is judged by `is_managed`, exactly as the
    lifecycle handler judges it (any case, surrounding spaces ignored).
    """
    found: dict[str, InstanceFacts] = {}
    for key in settings.managed_tag_keys:
        filters = [
            {"Name": "tag-key", "Values": [key]},
            {"Name": "instance-state-name", "Values": sorted(states)},
        ]
        for facts in _instances(ec2, filters):
            if facts.managed(settings):
                found[facts.instance_id] = facts
    return found


def array_has_live_instances(ec2: EC2Client, array_id: str) -> bool:
    """Whether EC2 still has any instance of the array that is not terminated (stopped
    counts: it may run again). EC2 filters after it paginates, so an empty page may
    still have a next one; the first instance found ends the search."""
    filters = [
        {"Name": f"tag:{ARRAY_ID_TAG}", "Values": [array_id]},
        {"Name": "instance-state-name", "Values": list(NOT_ENDED_STATES)},
    ]
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=filters,  # type: ignore[arg-type]
        PaginationConfig={"PageSize": 1000},
    )
    return any(r.get("Instances") for page in pages for r in page.get("Reservations", []))


class Registry:
    """The instances table: one item per instance, written by several handlers.

    Lifecycle fields (`state`, `last_event_ms`, ...) are written only by newer state
    changes; other handlers (interruptions, health) add their own fields to the same
    item without touching those, so each writer's condition looks at its own fields.

    Args:
        dynamodb: a DynamoDB client.
        table: the table name (`INSTANCES_TABLE`).
        clock: epoch seconds, for TTLs (default `time.time`).
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str, clock: Any = time.time) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.clock = clock

    def update_request(
        self,
        instance_id: str,
        values: Mapping[str, Any],
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The `UpdateItem` request (also usable in a transaction) that SETs `values`
        and REMOVEs `remove` on an instance's item if `condition` holds.

        In `condition`, `#name` is the attribute `name`, and `:name` a key of `values`
        or `condition_values`.
        """
        present = {k: v for k, v in values.items() if v is not None}
        names = {f"#{k.replace(':', '_')}": k for k in present}
        attr_values = {f":{k.replace(':', '_')}": _serialize(v) for k, v in present.items()}
        for key, value in (condition_values or {}).items():
            attr_values[f":{key}"] = _serialize(value)
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"instance_id": {"S": instance_id}},
            "UpdateExpression": "SET " + ", ".join(f"{n} = :{n[1:]}" for n in names),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": attr_values,
        }
        removed = [f"#{k}" for k in remove]
        if removed:
            request["UpdateExpression"] += " REMOVE " + ", ".join(removed)
            names.update({r: r[1:] for r in removed})
        if condition:
            request["ConditionExpression"] = condition
            for token in {t for t in condition.replace("(", " ").replace(")", " ").split()}:
                if token.startswith("#") and token not in names:
                    names[token] = token[1:]
        return request

    def update(
        self,
        instance_id: str,
        values: Mapping[str, Any],
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """Carry out `update_request(...)`. Returns the previous item (empty for a new
        one), or None when the condition failed and nothing was written."""
        request = self.update_request(instance_id, values, condition, condition_values, remove)
        try:
            response = self.dynamodb.update_item(**request, ReturnValues="ALL_OLD")
        except ClientError as exc:
            if conditional_check_failed(exc):
                return None
            raise
        return {k: _deserialize(v) for k, v in response.get("Attributes", {}).items()}

    def record(
        self, change: StateChange, facts: InstanceFacts | None, managed: bool | None
    ) -> dict[str, Any] | None:
        """Record a state change if it is newer than what is recorded.

        Returns the previous item (empty for a first sighting), or None when the change
        is stale and nothing was written. An exact repeat of the recorded change is
        accepted again, so a retried message can finish side effects that failed.
        """
        values: dict[str, Any] = {
            "state": change.state,
            "state_rank": change.rank,
            "last_event_ms": change.epoch_ms,
            "last_event_time": iso(change.time),
            "gone": change.state == "terminated",
            "managed": managed,
        }
        if change.state == "running":
            # When this run began: a spot interruption before it belongs to an earlier run.
            values["running_since_ms"] = change.epoch_ms
        if facts is not None:
            values.update(_facts_values(facts))
        remove: tuple[str, ...] = ()
        if change.state == "terminated" or managed is False:
            values["expires_at"] = int(self.clock()) + GONE_RETENTION_SECONDS
        elif managed:
            # Running managed again (say, opted back in across a stop/start): an earlier
            # TTL mark would have DynamoDB delete the row of a watched instance.
            remove = ("expires_at",)
        # A first sighting, an exact repeat, or newer than the recorded change (by time,
        # then by rank within one second) unless the recorded state is final.
        condition = (
            "attribute_not_exists(#last_event_ms)"
            " OR (#last_event_ms = :last_event_ms AND #state_rank = :state_rank)"
            " OR (#state <> :terminated AND (#last_event_ms < :last_event_ms"
            " OR (#last_event_ms = :last_event_ms AND #state_rank < :state_rank)))"
        )
        return self.update(
            change.instance_id, values, condition, {"terminated": "terminated"}, remove
        )

    def adopt(self, facts: InstanceFacts, observed_ms: int) -> bool:
        """Record a running managed instance the events missed, unless already known.

        Returns whether it was written.
        """
        values = {
            "state": facts.state,
            "state_rank": STATE_RANK.get(facts.state, 1),
            "last_event_ms": observed_ms,
            "last_event_time": iso_ms(observed_ms),
            "managed": True,
            "gone": False,
            **_facts_values(facts),
        }
        return (
            self.update(facts.instance_id, values, "attribute_not_exists(#last_event_ms)")
            is not None
        )

    def get(self, instance_id: str) -> dict[str, Any] | None:
        response = self.dynamodb.get_item(
            TableName=self.table, Key={"instance_id": {"S": instance_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else {k: _deserialize(v) for k, v in item.items()}

    def get_many(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Consistent reads of many items, 100 keys per `BatchGetItem`; absent ones are
        left out."""
        found: dict[str, dict[str, Any]] = {}
        keys = [{"instance_id": {"S": i}} for i in sorted(set(instance_ids))]
        for item in batch_get(self.dynamodb, self.table, keys, consistent=True):
            row = {k: _deserialize(v) for k, v in item.items()}
            found[str(row["instance_id"])] = row
        return found

    def all(self) -> list[dict[str, Any]]:
        """Every recorded instance (the table holds live instances and recent tombstones)."""
        rows: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table):
            rows.extend({k: _deserialize(v) for k, v in item.items()} for item in page["Items"])
        return rows


def _facts_values(facts: InstanceFacts) -> dict[str, Any]:
    return {
        "instance_type": facts.instance_type,
        "availability_zone": facts.availability_zone,
        "lifecycle": facts.lifecycle,
        "launch_time": facts.launch_time,
        "owner": facts.owner,
        "platform": facts.platform,
        "tenancy": facts.tenancy,
        "public_ipv4": facts.public_ipv4,
        "cost_limit_usd": _cost_limit(facts.tags.get(COST_LIMIT_TAG)),
        **facts.membership(),
    }


def cost_drivers(facts: InstanceFacts, settings: Settings) -> dict[str, Any]:
    """What prices an instance and whose it is (`chalicelib.cost.runs` keeps it on the
    row even when the registry refuses a late `running`)."""
    return {
        "managed": facts.managed(settings),
        **{k: v for k, v in _facts_values(facts).items() if v is not None},
    }


def _cost_limit(value: str | None) -> str | None:
    """The `spawn:cost-limit` tag as a decimal string, or None when absent or not a
    positive number (kept as a string: the registry's serializer takes no floats)."""
    try:
        number = float(value) if value is not None else 0.0
    except ValueError:
        return None
    return value.strip() if value is not None and 0 < number < float("inf") else None
