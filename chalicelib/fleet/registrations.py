"""Array registrations in the stats table, from the instances' spawn tags.

Each array's name, declared size and owner (`spawn:iam-user`) are written when its
first instance comes up; the first owner stays, so nobody takes an array over by
tagging its id. A sparse index, `owner-arrays` (hash `owner`, range `array_id`), holds
only registrations with an owner, so one owner's arrays are a Query of their page
whatever the number of arrays (per-user isolation, `chalicelib.core.access`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.core.settings import Settings
    from chalicelib.fleet.registry import InstanceFacts

logger = logging.getLogger(__name__)

OWNER_INDEX = "owner-arrays"


def registration_key(array_id: str) -> str:
    return f"array#{array_id}"


@dataclass(frozen=True)
class ArrayRecord:
    """An array as registered from its instances' spawn tags."""

    array_id: str
    name: str | None
    size: int | None
    owner: str | None

    @property
    def info(self) -> tuple[str | None, int | None]:
        """(name, declared size), as `progress_view` takes them."""
        return self.name, self.size


def _record(item: Mapping[str, Any], array_id: str) -> ArrayRecord:
    size = item.get("size", {}).get("N")
    return ArrayRecord(
        array_id=array_id,
        name=item.get("name", {}).get("S"),
        size=int(size) if size is not None else None,
        owner=item.get("owner", {}).get("S"),
    )


class Registrations:
    """The array registrations of `chalicelib.fleet.stats.Stats`."""

    dynamodb: DynamoDBClient
    table: str

    def register_array(
        self, array_id: str, name: str | None, size: int | None, owner: str | None = None
    ) -> None:
        """Remember an array's name, declared size and owner, from its instances' spawn
        tags.

        The first owner recorded stays: an instance that someone else tags later with
        the same array id cannot take the array over (that is logged).
        """
        assignments = {"array_id": ("#array_id = :array_id", {"S": array_id})}
        if name:
            assignments["name"] = ("#name = :name", {"S": name})
        if size is not None:
            assignments["size"] = ("#size = :size", {"N": str(size)})
        if owner:
            assignments["owner"] = ("#owner = if_not_exists(#owner, :owner)", {"S": owner})
        response = self.dynamodb.update_item(
            TableName=self.table,
            Key={"key": {"S": registration_key(array_id)}},
            UpdateExpression="SET " + ", ".join(a for a, _ in assignments.values()),
            ExpressionAttributeNames={f"#{attr}": attr for attr in assignments},
            ExpressionAttributeValues={f":{attr}": v for attr, (_, v) in assignments.items()},
            ReturnValues="ALL_NEW",
        )
        kept = response.get("Attributes", {}).get("owner", {}).get("S")
        if owner and kept != owner:
            logger.warning(
                "array already registered to another owner; owner kept",
                extra={"array_id": array_id},
            )

    def register_arrays(self, facts: Iterable[InstanceFacts], settings: Settings) -> None:
        """Register the arrays of managed instances coming up (or found running): one
        write per array, from the first of its instances in `facts`."""
        first: dict[str, InstanceFacts] = {}
        for item in facts:
            if item.array_id and item.managed(settings):
                first.setdefault(item.array_id, item)
        for array_id, item in first.items():
            membership = item.membership()
            self.register_array(
                array_id, membership["array_name"], membership["array_size"], item.owner
            )

    def array_record(self, array_id: str) -> ArrayRecord | None:
        """The array's registration, or None if no instance of it was ever seen."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"key": {"S": registration_key(array_id)}}
        ).get("Item")
        return None if item is None else _record(item, array_id)

    def array_info(self, array_id: str) -> tuple[str | None, int | None] | None:
        """(name, declared size) of an array seen on instances, or None if never seen."""
        record = self.array_record(array_id)
        return None if record is None else record.info

    def arrays_of(
        self, owner: str, limit: int, after: str | None = None
    ) -> tuple[list[ArrayRecord], str | None]:
        """Up to `limit` of one owner's arrays in array id order, after array id `after`,
        and the id to resume after (None at the end): a Query of `owner-arrays` reading
        at most `limit + 1` registrations."""
        found: list[ArrayRecord] = []
        start = after
        while len(found) <= limit:
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": owner}},
                "Limit": limit + 1 - len(found),
            }
            if start is not None:
                request["ExclusiveStartKey"] = {
                    "owner": {"S": owner},
                    "array_id": {"S": start},
                    "key": {"S": registration_key(start)},
                }
            response = self.dynamodb.query(**request)
            found.extend(_record(item, item["array_id"]["S"]) for item in response["Items"])
            last = response.get("LastEvaluatedKey")
            if last is None:
                break
            start = last["array_id"]["S"]
        if len(found) > limit:
            return found[:limit], found[limit - 1].array_id
        return found, None
