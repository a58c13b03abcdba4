"""Launch failures counted exactly, per array and fleet-wide, and their rolled-up alert.

One DynamoDB transaction marks the CloudTrail `eventID` seen and adds to the counters
(per array, per hour of the fleet, per alert window), each split into `SHARDS` items by
the event id, so a burst of failures rarely conflicts; a duplicate is refused by the
mark. Idempotent writes follow (the alert's pending set, the latest failure, the
capacity pairs) on every delivery; the capacity counts once. Reads are a fixed number
of keys. The alert `array_launch_failures` goes out once per array, code and 10-minute
window, from the fleet tick, claimed by a conditional write. Details:
docs/launch-failures.md.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.alerts.publish import Alert, AlertPublisher
from chalicelib.core.access import owner_key
from chalicelib.core.batching import batch_get, conditional_check_failed, transact_conflicts_retried
from chalicelib.fleet.events import MalformedEvent, iso
from chalicelib.fleet.launch_events import LaunchFailure, parse_launch_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

logger = logging.getLogger(__name__)

SHARDS = 8
WINDOW = timedelta(minutes=10)
EVENT_RETENTION = timedelta(days=2)  # EventBridge retries for 24 h
HOUR_RETENTION = timedelta(days=3)
WINDOW_RETENTION = timedelta(days=1)
CAPACITY_RETENTION = timedelta(days=9)  # shared with /capacity (i23-capacity)
ALERT_WINDOWS_SCANNED = 3
SUBNET_CACHE_MAX = 512
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,47}$")


def shard_of(event_id: str) -> int:
    return zlib.crc32(event_id.encode()) % SHARDS


def array_key(array_id: str, shard: int) -> str:
    return f"launch-failures#array#{array_id}#{shard:02d}"


def last_key(array_id: str) -> str:
    return f"launch-failures#last#{array_id}"


def hour_key(at: datetime, shard: int, owner: str | None = None) -> str:
    """The fleet's hour bucket, or one owner's (per-user isolation of `/fleet`)."""
    scope = "" if owner is None else f"owner#{owner}#"
    return f"launch-failures#{scope}hour#{at:%Y-%m-%dT%H}#{shard:02d}"


def window_start(at: datetime) -> datetime:
    minutes = (at.minute // 10) * 10
    return at.replace(minute=minutes, second=0, microsecond=0)


def window_key(array_id: str, start: datetime, shard: int) -> str:
    return f"launch-failures#window#{array_id}#{start:%Y-%m-%dT%H%M}#{shard:02d}"


def pending_key(start: datetime) -> str:
    """The pairs (code, array) with failures in one alert window, and those alerted."""
    return f"launch-failures#alerts#{start:%Y-%m-%dT%H%M}"


def capacity_key(at: datetime, instance_type: str, zone: str) -> str:
    """The item `/capacity` reads (format shared with i23-capacity)."""
    return f"capacity#{at:%Y-%m-%d}#{instance_type}#{zone}"


def capacity_pairs_key(at: datetime) -> str:
    return f"capacity-pairs#{at:%Y-%m-%d}"


def _name(value: str | None) -> str | None:
    """A type or zone safe to put in a key (else unknown)."""
    return value if value is not None and _NAME.fullmatch(value) else None


def _epoch(at: datetime) -> dict[str, str]:
    return {"N": str(int(at.timestamp()))}


def _add(
    table: str, key: str, counts: Mapping[str, int], expires: datetime | None
) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(counts)}
    values: dict[str, Any] = {":one": {"N": "1"}}
    expression = "ADD " + ", ".join(f"#a{i} :one" for i in range(len(counts)))
    if expires is not None:
        names["#e"] = "expires_at"
        values[":e"] = _epoch(expires)
        expression += " SET #e = :e"
    return {
        "TableName": table,
        "Key": {"key": {"S": key}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


@dataclass
class SubnetZones:
    """A subnet's zone, from `DescribeSubnets`, cached (bounded) for the process."""

    ec2: EC2Client | None
    cache: dict[str, str | None] = field(default_factory=dict)

    def zone(self, subnet_id: str) -> str | None:
        if subnet_id in self.cache:
            return self.cache[subnet_id]
        zone = None
        if self.ec2 is not None:
            try:
                found = self.ec2.describe_subnets(SubnetIds=[subnet_id]).get("Subnets", [])
                zone = found[0].get("AvailabilityZone") if found else None
            except ClientError as exc:
                logger.warning(
                    "subnet zone unknown",
                    extra={"subnet_id": subnet_id, "error": exc.response["Error"]["Code"]},
                )
        if len(self.cache) >= SUBNET_CACHE_MAX:
            self.cache.clear()
        self.cache[subnet_id] = zone
        return zone


@dataclass
class LaunchFailures:
    """Counts failed launch calls and sends the rolled-up alert.

    Args:
        dynamodb: a DynamoDB client (the stats table).
        table: `STATS_TABLE`.
        alerts: the alert publisher.
        subnets: zones of subnets a request names instead of a zone.
        count_untagged: count failures without a spawn array tag fleet-wide (else ignore).
        alert_delay_seconds: how long after a window's first failure of a code its alert
            waits, so it carries the burst's count.
        clock / sleep: now and how to wait (tests pass fakes).
    """

    dynamodb: DynamoDBClient
    table: str
    alerts: AlertPublisher
    subnets: SubnetZones
    count_untagged: bool = True
    alert_delay_seconds: float = 60.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep

    # --- writes -------------------------------------------------------------------

    def on_event(self, event: Any) -> str:
        """Handle one EventBridge event; what became of it (`counted`, `duplicate`,
        `ignored`, `malformed`). Never raises for the event's shape."""
        try:
            failure = parse_launch_failure(event)
        except MalformedEvent as exc:
            # Retrying cannot fix it: say why, never the event itself.
            logger.error("launch failure event not understood", extra={"reason": str(exc)})
            return "malformed"
        if failure.truncated:
            logger.warning(
                "launch failure without its request (omitted or truncated by CloudTrail): "
                "counted fleet-wide only",
                extra={"code": failure.code},
            )
        return self.record(failure)

    def record(self, failure: LaunchFailure) -> str:
        if failure.array_id is None and not self.count_untagged:
            return "ignored"
        zone = _name(failure.availability_zone)
        if zone is None and failure.subnet_id:
            zone = _name(self.subnets.zone(failure.subnet_id))
        kind = _name(failure.instance_type)
        counted = self._count(failure, kind, zone)
        self._after(failure, kind, zone, counted)
        logger.info(
            "launch failure",
            extra={
                "code": failure.code,
                "array_id": failure.array_id,
                "counted": counted,
                "instance_type": kind,
                "availability_zone": zone,
            },
        )
        return "counted" if counted else "duplicate"

    def _count(self, failure: LaunchFailure, kind: str | None, zone: str | None) -> bool:
        shard, at, code = shard_of(failure.event_id), failure.at, failure.code
        mark = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "key": {"S": f"launch-failure#event#{failure.event_id}"},
                    "expires_at": _epoch(at + EVENT_RETENTION),
                },
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "key"},
            }
        }
        hourly = {f"c#{code}": 1, f"m{at:%M}#{code}": 1}
        hour = _add(self.table, hour_key(at, shard), hourly, at + HOUR_RETENTION)
        items: list[dict[str, Any]] = [mark, {"Update": hour}]
        owner = owner_key(failure.owner)
        if owner is not None:
            mine = _add(self.table, hour_key(at, shard, owner), hourly, at + HOUR_RETENTION)
            items.append({"Update": mine})
        if failure.array_id:
            counts = {"total": 1, f"c#{code}": 1}
            if kind and zone:
                counts[f"tz#{kind}#{zone}#{code}"] = 1
            items.append(
                {"Update": _add(self.table, array_key(failure.array_id, shard), counts, None)}
            )
            start = window_start(at)
            key = window_key(failure.array_id, start, shard)
            items.append({"Update": _add(self.table, key, {f"c#{code}": 1}, at + WINDOW_RETENTION)})
        return transact_conflicts_retried(self.dynamodb, items, self.sleep)

    def _after(
        self, failure: LaunchFailure, kind: str | None, zone: str | None, counted: bool
    ) -> None:
        """What follows the count: idempotent writes on every delivery (a retry after a
        crash completes them), the capacity count only on the first."""
        at, code = failure.at, failure.code
        if kind and zone:
            if counted:
                self.dynamodb.update_item(
                    **_add(
                        self.table,
                        capacity_key(at, kind, zone),
                        {f"lf_{code}": 1},
                        at + CAPACITY_RETENTION,
                    )
                )
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": capacity_pairs_key(at)}},
                UpdateExpression="ADD #p :p SET #e = :e",
                ExpressionAttributeNames={"#p": "pairs", "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":p": {"SS": [f"{kind}#{zone}"]},
                    ":e": _epoch(at + CAPACITY_RETENTION),
                },
            )
        if not failure.array_id:
            return
        pair = f"{code} {failure.array_id}"
        start = window_start(at)
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"key": {"S": pending_key(start)}},
            UpdateExpression="ADD #p :p SET #f = if_not_exists(#f, :now), #e = :e",
            ExpressionAttributeNames={"#p": "pairs", "#f": f"f#{pair}", "#e": "expires_at"},
            ExpressionAttributeValues={
                ":p": {"SS": [pair]},
                ":now": {"N": str(int(self.clock().timestamp() * 1000))},
                ":e": _epoch(at + WINDOW_RETENTION),
            },
        )
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": last_key(failure.array_id)}},
                UpdateExpression="SET #at = :at, #code = :code, #msg = :msg",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at_ms", "#code": "code", "#msg": "message"},
                ExpressionAttributeValues={
                    ":at": {"N": str(int(at.timestamp() * 1000))},
                    ":code": {"S": code},
                    ":msg": {"S": failure.message},
                },
            )
        except ClientError as exc:
            if not conditional_check_failed(exc):
                raise

    # --- reads --------------------------------------------------------------------

    def _items(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found = batch_get(self.dynamodb, self.table, [{"key": {"S": k}} for k in keys])
        return {item["key"]["S"]: item for item in found}

    def array_view(self, array_id: str) -> dict[str, Any]:
        """`launch_failures` of `/arrays/{id}/progress`: nine keys, one BatchGetItem."""
        keys = [array_key(array_id, s) for s in range(SHARDS)]
        items = self._items([*keys, last_key(array_id)])
        total = 0
        by_code: dict[str, int] = {}
        by_tz: dict[str, int] = {}
        for key in keys:
            for name, value in items.get(key, {}).items():
                if "N" not in value:
                    continue
                n = int(value["N"])
                if name == "total":
                    total += n
                elif name.startswith("c#"):
                    by_code[name[2:]] = by_code.get(name[2:], 0) + n
                elif name.startswith("tz#") and name.count("#") == 3:
                    by_tz[name] = by_tz.get(name, 0) + n
        ranked = sorted((tuple(name.split("#")[1:]), n) for name, n in by_tz.items())
        ranked.sort(key=lambda entry: -entry[1])
        rows = [
            {"instance_type": kind, "availability_zone": zone, "code": code, "count": n}
            for (kind, zone, code), n in ranked
        ]
        last = None
        newest = items.get(last_key(array_id))
        if newest and "at_ms" in newest:
            at = datetime.fromtimestamp(int(newest["at_ms"]["N"]) / 1000, UTC)
            last = {
                "at": iso(at),
                "code": newest.get("code", {}).get("S", ""),
                "message": newest.get("message", {}).get("S", ""),
            }
        return {
            "total": total,
            "by_code": dict(sorted(by_code.items())),
            "by_type_zone": rows,
            "last": last,
        }

    def fleet_view(
        self, now: datetime | None = None, owner: str | None = None
    ) -> dict[str, dict[str, int]]:
        """`launch_failures` of `/fleet`: by code, last hour (to the minute) and 24 h
        (to the hour); 24 x `SHARDS` keys. `owner`: only that launcher's failures."""
        now = now or self.clock()
        hours = [now - timedelta(hours=h) for h in range(24)]
        keys = [hour_key(h, s, owner) for h in hours for s in range(SHARDS)]
        items = self._items(keys)
        day: dict[str, int] = {}
        hour: dict[str, int] = {}
        recent = {f"{(now - timedelta(minutes=m)):%Y-%m-%dT%H}#m{(now - timedelta(minutes=m)):%M}"
                  for m in range(60)}  # fmt: skip
        for h in hours:
            for s in range(SHARDS):
                for name, value in items.get(hour_key(h, s, owner), {}).items():
                    if "N" not in value:
                        continue
                    if name.startswith("c#"):
                        day[name[2:]] = day.get(name[2:], 0) + int(value["N"])
                    elif name.startswith("m") and "#" in name:
                        minute, code = name.split("#", 1)
                        if f"{h:%Y-%m-%dT%H}#{minute}" in recent:
                            hour[code] = hour.get(code, 0) + int(value["N"])
        return {"last_hour": dict(sorted(hour.items())), "last_24h": dict(sorted(day.items()))}

    # --- the rolled-up alert -------------------------------------------------------

    def send_alerts(self, now: datetime | None = None) -> int:
        """Send each due `array_launch_failures` alert once; how many were sent."""
        now = now or self.clock()
        sent = 0
        newest = window_start(now)
        for back in range(ALERT_WINDOWS_SCANNED):
            start = newest - WINDOW * back
            item = self._items([pending_key(start)]).get(pending_key(start))
            if not item:
                continue
            alerted = set(item.get("alerted", {}).get("SS", []))
            for pair in sorted(set(item.get("pairs", {}).get("SS", [])) - alerted):
                first = int(item.get(f"f#{pair}", {}).get("N", "0")) / 1000
                if now.timestamp() - first < self.alert_delay_seconds:
                    continue
                if self._claim(start, pair):
                    sent += self._send(start, pair, now)
        return sent

    def _claim(self, start: datetime, pair: str) -> bool:
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": pending_key(start)}},
                UpdateExpression="ADD #a :p",
                ConditionExpression="NOT contains(#a, :one)",
                ExpressionAttributeNames={"#a": "alerted"},
                ExpressionAttributeValues={":p": {"SS": [pair]}, ":one": {"S": pair}},
            )
            return True
        except ClientError as exc:
            if conditional_check_failed(exc):
                return False
            raise

    def _send(self, start: datetime, pair: str, now: datetime) -> int:
        code, array_id = pair.split(" ", 1)
        items = self._items([window_key(array_id, start, s) for s in range(SHARDS)])
        count = sum(int(i.get(f"c#{code}", {}).get("N", "0")) for i in items.values())
        alert = Alert(
            event_type="array_launch_failures",
            severity="warning",
            subject=f"{count} launch failure(s) {code} in array {array_id}",
            details={
                "code": code,
                "count": count,
                "window_start": iso(start),
                "window_end": iso(start + WINDOW),
            },
            array_id=array_id,
            time=now,
            dedupe_key=f"{start:%Y-%m-%dT%H%M}#{code}",
        )
        try:
            self.alerts.publish(alert)
            return 1
        except ClientError as exc:
            # Give the claim back: the next tick tries again.
            logger.error(
                "launch failure alert not sent",
                extra={"array_id": array_id, "code": code, "error": exc.response["Error"]["Code"]},
            )
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"key": {"S": pending_key(start)}},
                UpdateExpression="DELETE #a :p",
                ExpressionAttributeNames={"#a": "alerted"},
                ExpressionAttributeValues={":p": {"SS": [pair]}},
            )
            return 0
