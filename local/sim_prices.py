"""The local stack's spot market: `DescribeSpotPriceHistory` answered from prices the
simulator moves during its rounds.

moto answers that call from a fixed table whose prices cannot be set, so the local
stack hands the cost engine this instead (`PriceBook(ec2=market)`). Prices start at
the shipped snapshot's spot price for each type and change now and then by up to 25 %,
as spot prices do; answers are in AWS's documented shape and, as AWS documents, include
the price in force at `StartTime`. On-demand prices stay the snapshot's.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from chalicelib.cost.prices import shipped_snapshot

REGION = "us-east-1"
# Chance per simulator round that a (type, zone) market moves.
CHANGE_PER_ROUND = 0.1


class SpotMarket:
    """Spot prices per (instance type, zone), moved by `step`."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random(7)
        self._lock = threading.Lock()
        self._history: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def _base(self, instance_type: str) -> float | None:
        return shipped_snapshot().spot(REGION, instance_type, "Linux/UNIX")

    def _points(self, instance_type: str, zone: str) -> list[tuple[float, float]]:
        key = (instance_type, zone)
        if key not in self._history:
            base = self._base(instance_type)
            self._history[key] = [] if base is None else [(0.0, base)]
        return self._history[key]

    def step(self, now: datetime) -> None:
        """One simulator round: each known market may move."""
        with self._lock:
            for (instance_type, _), points in self._history.items():
                base = self._base(instance_type)
                if points and base and self._rng.random() < CHANGE_PER_ROUND:
                    price = round(base * self._rng.uniform(0.75, 1.25), 6)
                    points.append((now.timestamp(), price))

    def get_paginator(self, name: str) -> SpotMarket:
        if name != "describe_spot_price_history":
            raise NotImplementedError(name)
        return self

    def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
        start = request["StartTime"].timestamp()
        end = request["EndTime"].timestamp()
        zone = request["AvailabilityZone"]
        instance_type = request["InstanceTypes"][0]
        with self._lock:
            points = list(self._points(instance_type, zone))
        before = [p for p in points if p[0] <= start][-1:]
        inside = [p for p in points if start < p[0] <= end]
        yield {
            "SpotPriceHistory": [
                {
                    "AvailabilityZone": zone,
                    "InstanceType": instance_type,
                    "ProductDescription": request["ProductDescriptions"][0],
                    "SpotPrice": f"{price:.6f}",
                    "Timestamp": datetime.fromtimestamp(at, UTC),
                }
                for at, price in reversed(before + inside)
            ]
        }
