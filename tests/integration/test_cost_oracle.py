"""The product's cost per array against an independent billing oracle (issue #22).

Generated histories run through the real handlers on moto: the lifecycle gets each
instance's state changes shuffled, some twice, some lost; the reconciler heals what was
lost; the fleet tick prices the registry. `tests/billing_oracle.py` prices the true
history from AWS's rules alone. Every array's `usd` must be within 0.5 % of it.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.cost.prices import PriceBook
from chalicelib.fleet.lifecycle import Message
from local.provision import Provisioned
from tests.billing_oracle import TrueInstance, bill, compute_bill
from tests.integration.conftest import Fleet, container

SNAPSHOT = json.loads(
    (Path(__file__).parents[2] / "chalicelib" / "cost" / "price-snapshot.json").read_text()
)["regions"]["us-east-1"]
LINUX_AMI = "ami-1e749f67"  # a moto image without Platform (the tests' default is Windows)
ZONES = ("us-east-1a", "us-east-1b")
ARRAYS = {
    # array id: (instance type, lifecycle of each member)
    "spot-20260127-aaaaaa": ("m5.large", ["spot"] * 6),
    "ondemand-20260127-bbbbbb": ("c5.xlarge", ["on-demand"] * 5),
    "mixed-20260127-cccccc": ("t3.medium", ["spot", "on-demand"] * 3),
    # Short runs with long stops: the 60 s minimum and EBS while stopped dominate its bill.
    "bursty-20260127-dddddd": ("m5.large", ["on-demand", "spot"] * 2),
}
VOLUME_GIB = 50


class SpotHistory:
    """Stands in for EC2's `DescribeSpotPriceHistory` with prices that change during
    the runs: moto answers that call from a fixed table whose prices cannot be set.
    Pages are in AWS's documented shape, and, as AWS documents, the answer includes the
    price in force at `StartTime`."""

    def __init__(self, prices: Mapping[tuple[str, str], list[tuple[float, float]]]) -> None:
        self.prices = prices
        self.calls = 0

    def get_paginator(self, name: str) -> SpotHistory:
        assert name == "describe_spot_price_history"
        return self

    def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
        self.calls += 1
        start = request["StartTime"].timestamp()
        end = request["EndTime"].timestamp()
        history = self.prices.get((request["InstanceTypes"][0], request["AvailabilityZone"]), [])
        before = [p for p in history if p[0] <= start][-1:]
        inside = [p for p in history if start < p[0] <= end]
        yield {
            "SpotPriceHistory": [
                {
                    "AvailabilityZone": request["AvailabilityZone"],
                    "InstanceType": request["InstanceTypes"][0],
                    "ProductDescription": "Linux/UNIX",
                    "SpotPrice": f"{price:.6f}",
                    "Timestamp": datetime.fromtimestamp(at, UTC),
                }
                for at, price in reversed(before + inside)
            ]
        }


@dataclass
class Member:
    instance_id: str
    array_id: str
    truth: TrueInstance
    events: list[tuple[float, str]]  # (time, state) as EC2 would send them
    lost: set[int]  # indexes into events that never arrive
    healed_end: bool  # its end events are all lost: the reconciler finds it ended


def spot_prices(
    rng: random.Random, base: float, start: float, end: float
) -> list[tuple[float, float]]:
    """A price in force before `start`, then a change every 20-60 minutes."""
    points = [(start - 3 * 3600, base)]
    at = start
    while at < end:
        at += rng.uniform(1200, 3600)
        points.append((float(int(at)), round(base * rng.uniform(0.7, 1.3), 6)))
    return points


def history(rng: random.Random, start: float, t_end: float) -> list[tuple[float, float]]:
    """True runs: 1-3 of them with stops between, one possibly shorter than a minute."""
    runs = []
    at = start
    for k in range(rng.randint(1, 3)):
        length = (
            rng.choice([rng.uniform(20, 55), rng.uniform(900, 5400)])
            if k
            else rng.uniform(1800, 5400)
        )
        end = min(at + length, t_end - 600)
        if end <= at + 5:
            break
        runs.append((float(int(at)), float(int(end))))
        at = end + rng.uniform(120, 900)
    return runs


def bursty(rng: random.Random, start: float) -> list[tuple[float, float]]:
    """Five runs of 10-50 s, 20-40 minutes stopped between them."""
    runs = []
    at = start
    for _ in range(5):
        runs.append((float(int(at)), float(int(at + rng.uniform(10, 50)))))
        at = runs[-1][1] + rng.uniform(1200, 2400)
    return runs


def build(
    fleet_session: boto3.Session, seed: int, t_end: float
) -> tuple[list[Member], SpotHistory]:
    rng = random.Random(seed)
    ec2 = fleet_session.client("ec2")
    members: list[Member] = []
    prices: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for array_id, (itype, lifecycles) in ARRAYS.items():
        for index, lifecycle in enumerate(lifecycles):
            zone = ZONES[index % 2]
            request: dict[str, Any] = {
                "ImageId": LINUX_AMI,
                "MinCount": 1,
                "MaxCount": 1,
                "InstanceType": itype,
                "Placement": {"AvailabilityZone": zone},
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/sda1",
                        "Ebs": {"VolumeSize": VOLUME_GIB, "VolumeType": "gp3"},
                    }
                ],
                "TagSpecifications": [
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": "spawn:managed", "Value": "true"},
                            {"Key": "spawn:job-array-id", "Value": array_id},
                            {"Key": "spawn:job-array-index", "Value": str(index)},
                        ],
                    }
                ],
            }
            if lifecycle == "spot":
                request["InstanceMarketOptions"] = {"MarketType": "spot"}
            instance_id = ec2.run_instances(**request)["Instances"][0]["InstanceId"]
            first = t_end - rng.uniform(3 * 3600, 5 * 3600)
            short = array_id.startswith("bursty")
            runs = bursty(rng, first) if short else history(rng, first, t_end)
            healed = not short and rng.random() < 0.25
            events: list[tuple[float, str]] = []
            for k, (a, b) in enumerate(runs):
                events.append((a, "running"))
                if k < len(runs) - 1:
                    events += [(b, "stopping"), (b + 30, "stopped")]
            if healed:
                # Runs until EC2 terminates it at the end, and every end event is lost.
                runs[-1] = (runs[-1][0], t_end)
                terminated = t_end
            else:
                last = runs[-1][1]
                terminated = last + 40
                events += [(last, "shutting-down"), (terminated, "terminated")]
            key = (itype, zone)
            if key not in prices:
                prices[key] = spot_prices(
                    rng, SNAPSHOT["spot"][itype]["Linux/UNIX"], t_end - 6 * 3600, t_end
                )
            truth = TrueInstance(
                runs=runs,
                terminated_at=terminated,
                spot=lifecycle == "spot",
                on_demand_per_hour=SNAPSHOT["on_demand"][itype]["Linux/UNIX"],
                spot_prices=prices[key],
                volume_gib=VOLUME_GIB,
                gb_month=SNAPSHOT["ebs"]["gp3"]["gb_month"],
                public_ipv4=1,
                ipv4_per_hour=SNAPSHOT["public_ipv4_hour"],
                launched_at=runs[0][0],
            )
            # A lost `stopping` leaves its `stopped`; a lost `shutting-down` its `terminated`.
            # A lost `stopping` leaves its `stopped` 30 s later: beside runs of a few
            # seconds that is no longer within 0.5 %, so short runs lose none.
            lost = (
                set()
                if short
                else {
                    i
                    for i, (_, s) in enumerate(events)
                    if s in ("stopping", "shutting-down") and rng.random() < 0.4
                }
            )
            members.append(Member(instance_id, array_id, truth, events, lost, healed))
    return members, SpotHistory(prices)


def deliveries(fleet: Fleet, members: list[Member], rng: random.Random) -> list[Message]:
    """Every event that arrives, some twice, in a shuffled order."""
    messages = []
    for member in members:
        for i, (at, state) in enumerate(member.events):
            if i in member.lost:
                continue
            message = fleet.event(member.instance_id, state, datetime.fromtimestamp(at, UTC))
            messages.append(message)
            if rng.random() < 0.2:
                messages.append(message)
    rng.shuffle(messages)
    return messages


@pytest.mark.parametrize("seed", [1, 2])
def test_every_arrays_usd_is_within_half_a_percent_of_the_oracle(
    session: boto3.Session, infra: Provisioned, seed: int
) -> None:
    t_end = float(int(time.time()))
    members, spot = build(session, seed, t_end)
    fleet = Fleet(session, infra)
    clock = [t_end + 120]
    wiring = container(Clients(session), Settings(), clock=lambda: clock[0])
    wiring.price_book = PriceBook(
        "us-east-1",
        ec2=spot,  # type: ignore[arg-type]
        dynamodb=wiring.clients.dynamodb,
        table=wiring.settings.stats_table,
        clock=wiring.clock,
    )
    rng = random.Random(seed)
    messages = deliveries(fleet, members, rng)
    for k in range(0, len(messages), 10):
        outcome = wiring.lifecycle.handle(messages[k : k + 10])
        assert not outcome.failed
    # EC2 terminates the rest now; StateTransitionReason says when, to the second.
    terminated_at = float(int(time.time()))
    wiring.clients.ec2.terminate_instances(InstanceIds=[m.instance_id for m in members])
    for member in members:
        if member.healed_end:
            member.truth.runs[-1] = (member.truth.runs[-1][0], terminated_at)
            member.truth.terminated_at = terminated_at
    clock[0] = terminated_at + 120
    wiring.reconcile_with(float("inf"), None)
    wiring.fleet_health.tick()
    figures = wiring.cost_store.array_costs(ARRAYS)

    expected: dict[str, float] = defaultdict(float)
    equivalent: dict[str, float] = defaultdict(float)
    for member in members:
        expected[member.array_id] += bill(member.truth)
        equivalent[member.array_id] += compute_bill(member.truth, on_demand=True)
    assert any(m.healed_end for m in members)
    assert any(m.lost for m in members)
    for array_id in ARRAYS:
        usd = figures[array_id]["usd"]
        assert usd == pytest.approx(expected[array_id], rel=0.005), array_id
        assert figures[array_id]["usd_per_hour"] == 0
        assert figures[array_id]["on_demand_equivalent_usd"] == pytest.approx(
            equivalent[array_id], rel=0.005
        )
    spot_array = figures["spot-20260127-aaaaaa"]
    assert spot_array["by_lifecycle"]["on_demand"] == 0
    assert spot_array["usd"] < spot_array["on_demand_equivalent_usd"]
    assert "spot-history" in spot_array["price_source"]
    assert figures["ondemand-20260127-bbbbbb"]["by_lifecycle"]["spot"] == 0
    # Lookups follow the (type, zone) pairs, never the instances.
    assert spot.calls <= 2 * len({(t, z) for t, _ in ARRAYS.values() for z in ZONES})
