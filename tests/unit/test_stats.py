"""Interruption counters split into shards: keys and totals (pure)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from chalicelib.fleet.counters import (
    COUNTER_SHARDS,
    counter_shard,
    interruption_increments,
    totals_from,
    window_keys,
)

T0 = datetime(2026, 1, 27, 10, 59, tzinfo=UTC)


def _apply(items: dict[str, dict[str, int]], entries: list[dict[str, object]]) -> None:
    """Carry out `ADD` updates as DynamoDB would."""
    for entry in entries:
        update = entry["Update"]
        assert isinstance(update, dict)
        item = items.setdefault(update["Key"]["key"]["S"], {})
        adds = update["UpdateExpression"].split(" SET ")[0].removeprefix("ADD ").split(", ")
        for add in adds:
            name = update["ExpressionAttributeNames"][add.split()[0]]
            item[name] = item.get(name, 0) + 1


def test_instances_spread_over_every_shard() -> None:
    spread = Counter(counter_shard(f"i-{n:017x}") for n in range(1600))
    assert set(spread) == set(range(COUNTER_SHARDS))
    assert max(spread.values()) < 2 * min(spread.values())


def test_totals_sum_every_shard_to_the_minute_and_the_hour() -> None:
    items: dict[str, dict[str, int]] = {}
    at = [T0, T0 + timedelta(minutes=2), T0 - timedelta(hours=5), T0 - timedelta(days=2)]
    for n, moment in enumerate(at):
        _apply(items, interruption_increments("t", f"i-{n:017x}", moment, "render-1"))
    assert len({k for k in items if k.startswith("interruptions#all#")}) > 1  # several shards
    now = T0 + timedelta(minutes=30)
    assert totals_from(items, now) == {"last_hour": 2, "last_24h": 3, "total": 4}
    # An hour later, the minute 10:59 has left the last hour; 11:01 has not.
    assert totals_from(items, T0 + timedelta(minutes=61)) == {
        "last_hour": 1,
        "last_24h": 3,
        "total": 4,
    }
    # The readers fetch exactly the keys the totals need, in one BatchGet per 100.
    assert {k for k in items if k in set(window_keys(now))} == {
        k for k in items if not k.startswith("interruptions#array#") and "2026-01-25" not in k
    }
