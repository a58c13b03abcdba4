"""`python -m bench cost-per-array`: what pricing an array costs, per hour of running.

A 1,000-instance array of 3 instance types in 4 zones, half spot, runs for an hour; the
fleet tick prices it every minute (`chalicelib.cost.store.CostTick`, on moto). Counted:
price lookups (spot price history and Price List calls), the price cache's DynamoDB
calls, the cost documents' writes, and the extra items in the stats table. The same
hour at 2,000 instances must give the same counts: they follow the (type, zone) pairs
and the arrays, never the instances. Then the feature's added cost a month in the
monitoring cost model's terms (`bench.cost`): the run notes the lifecycle writes per
state change, and the tick's writes, at DynamoDB's on-demand prices.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bench.cost import ARRAY, HOURS, REPLACED_PER_DAY
from bench.report import Figure
from chalicelib.core.settings import Settings
from chalicelib.cost.prices import PriceBook
from chalicelib.cost.store import CostStore, CostTick
from local.provision import provision
from spawn_monitor.pricing import PRICE_LIST
from testkit.faults import count_calls

TYPES = ("m5.large", "c5.xlarge", "t3.medium")
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d")
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TICKS = 60  # one an hour, every minute


class SpotHistory:
    """EC2's spot price history for the bench: moto's is a fixed table (see
    tests/integration/test_cost_oracle.py). Counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get_paginator(self, name: str) -> SpotHistory:
        return self

    def paginate(self, **request: Any) -> Any:
        self.calls += 1
        yield {
            "SpotPriceHistory": [
                {
                    "AvailabilityZone": request["AvailabilityZone"],
                    "InstanceType": request["InstanceTypes"][0],
                    "ProductDescription": "Linux/UNIX",
                    "SpotPrice": "0.040000",
                    "Timestamp": request["StartTime"],
                }
            ]
        }


def rows(instances: int) -> list[dict[str, Any]]:
    started = int(T0.timestamp() * 1000)
    return [
        {
            "instance_id": f"i-{n:017x}",
            "managed": True,
            "array_id": "big-20261204-abcdef",
            "state": "running",
            "instance_type": TYPES[n % 3],
            "availability_zone": ZONES[n % 4],
            "lifecycle": "spot" if (n // 12) % 2 else "on-demand",
            "public_ipv4": 1,
            "cost_starts": {started},
            "cost_volumes": [{"type": "gp3", "size": 50, "iops": 3000, "throughput": 125}],
        }
        for n in range(instances)
    ]


def hour(instances: int) -> dict[str, float]:
    from moto import mock_aws

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        provision(session)
        settings = Settings()
        dynamodb = session.client("dynamodb")
        now = [T0.timestamp()]
        spot = SpotHistory()
        book = PriceBook(
            "us-east-1",
            ec2=spot,  # type: ignore[arg-type]
            dynamodb=dynamodb,
            table=settings.stats_table,
            clock=lambda: now[0],
        )
        tick = CostTick(CostStore(dynamodb, settings.stats_table), book)
        fleet = rows(instances)
        calls = count_calls(dynamodb)
        started = time.monotonic()
        for minute in range(1, TICKS + 1):
            now[0] = (T0 + timedelta(minutes=minute)).timestamp()
            tick.run(fleet, datetime.fromtimestamp(now[0], UTC))
        seconds = time.monotonic() - started
        items = dynamodb.scan(TableName=settings.stats_table)["Items"]
        extra = sum(1 for i in items if i["key"]["S"].startswith(("price#", "cost#")))
        return {
            "lookups": float(book.lookups.api_calls),
            "dynamodb_calls": float(sum(calls.values())),
            "writes": float(calls.get("BatchWriteItem", 0) + calls.get("PutItem", 0)),
            "items": float(extra),
            "seconds_per_tick": seconds / TICKS,
        }


def monthly_added(instances: int, writes_per_hour: float, reads_per_hour: float) -> float:
    """USD a month the feature adds for `instances` in arrays of `ARRAY`: per array, the
    tick's writes and reads measured above; per instance, one run note (`UpdateItem`,
    1 write unit) per state change it notes (running and an end, twice a day as
    `bench.cost` replaces instances)."""
    prices = PRICE_LIST["dynamodb"]
    arrays = instances / ARRAY
    tick_writes = arrays * writes_per_hour * HOURS
    tick_reads = arrays * reads_per_hour * HOURS
    notes = instances * REPLACED_PER_DAY * 2 * (HOURS / 24)
    write_price = float(prices["write_request_units_per_million"])
    read_price = float(prices["read_request_units_per_million"])
    return (tick_writes + notes) * write_price / 1e6 + tick_reads * read_price / 1e6


def run(instances: int | None = None) -> list[Figure]:
    small = hour(instances or 1_000)
    large = hour(2 * (instances or 1_000))
    figures = []
    for name, unit in (("lookups", "calls"), ("items", "items"), ("dynamodb_calls", "calls")):
        figures.append(
            Figure(
                f"{name.replace('_', ' ')} per hour, {2 * (instances or 1_000):,} / "
                f"{instances or 1_000:,} instances",
                large[name] / max(1.0, small[name]),
                "x",
                target=1.0,
                detail=f"{large[name]:g} vs {small[name]:g} {unit}",
            )
        )
    figures.append(
        Figure(
            "price lookups per hour, 3 types x 4 zones (12 spot keys; on-demand, EBS cached)",
            small["lookups"],
            "calls",
            target=12 * 12 + 3,
            detail="spot history refreshed every 5 min per (type, zone)",
        )
    )
    figures.append(
        Figure(
            "tick time per instance (1,000 instances)",
            small["seconds_per_tick"] / (instances or 1_000) * 1e6,
            "us",
            detail=f"{small['seconds_per_tick']:.2f} s a tick",
        )
    )
    reads = small["dynamodb_calls"] - small["writes"]
    for fleet in (1_000, 10_000):
        figures.append(
            Figure(
                f"added monitoring cost a month at {fleet:,} instances",
                monthly_added(fleet, small["writes"], reads),
                "USD",
                detail="run notes + cost documents + price cache, DynamoDB on-demand",
            )
        )
    return figures
