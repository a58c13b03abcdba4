"""Where prices come from: the Price List API, spot price history, a cache, a snapshot.

On-demand and EBS prices come from `pricing:GetProducts` (its endpoints exist in
us-east-1, eu-central-1 and ap-south-1 only: `PRICING_REGION`), spot prices from
`ec2:DescribeSpotPriceHistory` for the type, zone and product. Both are cached in the
stats table (`price#...` items with a TTL), so lookups grow with the distinct (type,
zone, product) keys, never with instances. When the API cannot be reached, is not
permitted or answers nonsense, the dated snapshot shipped beside this module prices
instead; with neither, the figure is `unpriced:<reason>`. Every quote names its source.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cost.billing import Segment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_pricing import PricingClient

logger = logging.getLogger(__name__)

SNAPSHOT_PATH = Path(__file__).with_name("price-snapshot.json")
PRICE_LIST = "price-list"
SPOT_HISTORY = "spot-history"
ON_DEMAND_TTL_SECONDS = 24 * 3600
# Spot prices change a few times a day at most; a tick asks again after this.
SPOT_REFRESH_SECONDS = 300
# Points older than this (and the one in force before them) are dropped from the cache.
SPOT_KEEP_SECONDS = 40 * 24 * 3600
# The Price List API's operatingSystem for each EC2 platform (PlatformDetails).
OPERATING_SYSTEMS = {
    "Linux/UNIX": "Linux",
    "Windows": "Windows",
    "Red Hat Enterprise Linux": "RHEL",
    "SUSE Linux": "SUSE",
    "Ubuntu Pro": "Ubuntu Pro",
}
TENANCIES = {"default": "Shared", "dedicated": "Dedicated", "host": "Host"}


def unpriced(reason: str) -> str:
    return f"unpriced:{reason}"


@dataclass(frozen=True)
class Quote:
    """Prices over time for one key (one segment for on-demand), and their source."""

    segments: tuple[Segment, ...]
    source: str

    @property
    def priced(self) -> bool:
        return bool(self.segments)


@dataclass(frozen=True)
class PriceSnapshot:
    """The dated snapshot shipped in the package (`price-snapshot.json`)."""

    date: str
    regions: Mapping[str, Mapping[str, Any]]

    @property
    def source(self) -> str:
        return f"snapshot:{self.date}"

    def _region(self, region: str) -> Mapping[str, Any]:
        return self.regions.get(region) or {}

    def on_demand(self, region: str, instance_type: str, platform: str) -> float | None:
        return _positive(self._region(region).get("on_demand", {}).get(instance_type, {}), platform)

    def spot(self, region: str, instance_type: str, platform: str) -> float | None:
        return _positive(self._region(region).get("spot", {}).get(instance_type, {}), platform)

    def ebs(self, region: str, volume_type: str) -> dict[str, float] | None:
        rates = self._region(region).get("ebs", {}).get(volume_type)
        return None if rates is None else {k: float(v) for k, v in rates.items()}

    def public_ipv4(self, region: str) -> float | None:
        value = self._region(region).get("public_ipv4_hour")
        return None if value is None else float(value)


def _positive(prices: Mapping[str, Any], key: str) -> float | None:
    value = prices.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


@cache
def shipped_snapshot() -> PriceSnapshot:
    document = json.loads(SNAPSHOT_PATH.read_text())
    return PriceSnapshot(document["date"], document["regions"])


def spot_product(platform: str) -> str:
    """DescribeSpotPriceHistory's product description for an EC2 platform."""
    return platform if platform in OPERATING_SYSTEMS else "Linux/UNIX"


@dataclass
class Lookups:
    """What price lookups cost, for the bench and the logs."""

    api_calls: int = 0
    cache_reads: int = 0
    cache_writes: int = 0
    failures: int = 0


@dataclass
class PriceBook:
    """Prices for one region, from the API or the snapshot, cached.

    Args:
        region: the stack's region (prices are per region).
        snapshot: the fallback (default: the shipped one).
        pricing: a Price List client in a region that has its endpoint (None: no API).
        ec2: an EC2 client for spot price history (None: snapshot spot prices).
        dynamodb / table: the stats table for the cache (None: memory only).
        clock: epoch seconds.

    Example:
        >>> book = PriceBook("us-east-1")          # snapshot only
        >>> book.on_demand("m5.large", "Linux/UNIX", "default").source
        'snapshot:2026-11-30'
    """

    region: str
    snapshot: PriceSnapshot = field(default_factory=shipped_snapshot)
    pricing: PricingClient | None = None
    ec2: EC2Client | None = None
    dynamodb: DynamoDBClient | None = None
    table: str | None = None
    clock: Callable[[], float] = time.time
    lookups: Lookups = field(default_factory=Lookups)
    _memo: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False)

    # --- on-demand ------------------------------------------------------------------

    def on_demand(self, instance_type: str | None, platform: str, tenancy: str) -> Quote:
        """The on-demand price of a type (one segment, in force throughout)."""
        if not instance_type:
            return Quote((), unpriced("unknown-instance-type"))
        key = f"price#od#{self.region}#{instance_type}#{platform}#{tenancy}"
        cached = self._cached(key, ON_DEMAND_TTL_SECONDS)
        if cached is not None:
            return _quote(cached)
        document: dict[str, Any] | None = None
        if self.pricing is not None:
            document = self._price_list(instance_type, platform, tenancy)
        if document is None:
            price = self.snapshot.on_demand(self.region, instance_type, platform)
            if tenancy != "default":
                price = None  # the snapshot holds shared tenancy only
            document = (
                {"usd_per_hour": price, "source": self.snapshot.source}
                if price is not None
                else {"usd_per_hour": None, "source": unpriced("unknown-instance-type")}
            )
            # A snapshot answer is not cached in DynamoDB: the API may answer next time.
            self._memo[key] = (self.clock(), document)
            return _quote(document)
        self._store(key, document, ON_DEMAND_TTL_SECONDS)
        return _quote(document)

    def _price_list(self, instance_type: str, platform: str, tenancy: str) -> dict[str, Any] | None:
        """One `GetProducts` call; None when the API fails or finds nothing."""
        assert self.pricing is not None
        filters = {
            "instanceType": instance_type,
            "regionCode": self.region,
            "operatingSystem": OPERATING_SYSTEMS.get(platform, "Linux"),
            "tenancy": TENANCIES.get(tenancy, "Shared"),
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
        }
        price = self._get_products(filters, "Hrs")
        return None if price is None else {"usd_per_hour": price, "source": PRICE_LIST}

    def _get_products(self, filters: Mapping[str, str], unit: str) -> float | None:
        assert self.pricing is not None
        self.lookups.api_calls += 1
        try:
            response = self.pricing.get_products(
                ServiceCode="AmazonEC2",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": name, "Value": value}
                    for name, value in filters.items()
                ],
                MaxResults=10,
            )
            return _price_from(response.get("PriceList", []), unit)
        except (ClientError, BotoCoreError) as exc:
            self.lookups.failures += 1
            logger.warning("price list unavailable; snapshot used", extra={"reason": str(exc)})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.lookups.failures += 1
            logger.error("bad price list response; snapshot used", extra={"reason": repr(exc)})
        return None

    # --- EBS and public IPv4 --------------------------------------------------------

    def ebs(self, volume_type: str | None) -> tuple[dict[str, float] | None, str]:
        """Monthly rates of a volume type (`gb_month`, `iops_month`, `throughput_month`)
        and their source. The GB-month price comes from the Price List API when it
        answers; IOPS and throughput rates from the snapshot."""
        kind = volume_type or "unknown"
        key = f"price#ebs#{self.region}#{kind}"
        cached = self._cached(key, ON_DEMAND_TTL_SECONDS)
        if cached is None:
            rates = self.snapshot.ebs(self.region, kind)
            source = self.snapshot.source if rates is not None else unpriced("unknown-volume-type")
            gb_month = None
            if self.pricing is not None and volume_type:
                gb_month = self._get_products(
                    {"productFamily": "Storage", "volumeApiName": kind, "regionCode": self.region},
                    "GB-Mo",
                )
            if gb_month is not None:
                rates = {**(rates or {}), "gb_month": gb_month}
                source = PRICE_LIST
                cached = {"rates": rates, "source": source}
                self._store(key, cached, ON_DEMAND_TTL_SECONDS)
            else:
                cached = {"rates": rates, "source": source}
                self._memo[key] = (self.clock(), cached)
        return cached.get("rates"), str(cached["source"])

    def public_ipv4(self) -> tuple[float | None, str]:
        """USD per public IPv4 address-hour, from the snapshot (one price worldwide)."""
        price = self.snapshot.public_ipv4(self.region)
        return price, self.snapshot.source if price is not None else unpriced("no-ipv4-price")

    # --- spot -----------------------------------------------------------------------

    def spot(
        self, instance_type: str | None, zone: str | None, platform: str, since_ms: int
    ) -> Quote:
        """Spot prices in force from `since_ms` to now for the type, zone and product:
        each change is its own segment."""
        if not instance_type:
            return Quote((), unpriced("unknown-instance-type"))
        if not zone:
            return Quote((), unpriced("missing-zone"))
        product = spot_product(platform)
        if self.ec2 is None:
            price = self.snapshot.spot(self.region, instance_type, product)
            if price is None:
                return Quote((), unpriced("unknown-instance-type"))
            return Quote((Segment(0, price),), self.snapshot.source)
        key = f"price#spot#{self.region}#{zone}#{instance_type}#{product}"
        now_ms = int(self.clock() * 1000)
        document = self._cached(key, SPOT_KEEP_SECONDS)
        fresh = (
            document is not None
            and now_ms - int(document["fetched_ms"]) < SPOT_REFRESH_SECONDS * 1000
            and int(document["from_ms"]) <= since_ms
        )
        if not fresh:
            document = self._refresh_spot(key, document, instance_type, zone, product, since_ms)
        if document is None:
            price = self.snapshot.spot(self.region, instance_type, product)
            if price is None:
                return Quote((), unpriced("no-spot-price"))
            return Quote((Segment(0, price),), self.snapshot.source)
        points = [Segment(int(t), float(p)) for t, p in document["points"]]
        if not points:
            return Quote((), unpriced("no-spot-price"))
        return Quote(tuple(points), SPOT_HISTORY)

    def _refresh_spot(
        self,
        key: str,
        document: dict[str, Any] | None,
        instance_type: str,
        zone: str,
        product: str,
        since_ms: int,
    ) -> dict[str, Any] | None:
        assert self.ec2 is not None
        now_ms = int(self.clock() * 1000)
        known = {int(t): float(p) for t, p in (document or {}).get("points", [])}
        covered = document is not None and int(document["from_ms"]) <= since_ms
        start_ms = int(document["fetched_ms"]) if covered and document else since_ms
        self.lookups.api_calls += 1
        try:
            pages = self.ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=[instance_type],  # type: ignore[list-item]
                ProductDescriptions=[product],
                AvailabilityZone=zone,
                StartTime=datetime.fromtimestamp(start_ms / 1000, UTC),
                EndTime=datetime.fromtimestamp(now_ms / 1000, UTC),
            )
            for page in pages:
                for entry in page.get("SpotPriceHistory", []):
                    if not str(entry.get("ProductDescription", "")).startswith(product):
                        continue
                    price = float(entry["SpotPrice"])
                    if not price > 0 or price != price:
                        raise ValueError(f"spot price {entry['SpotPrice']!r}")
                    known[int(entry["Timestamp"].timestamp() * 1000)] = price
        except (ClientError, BotoCoreError) as exc:
            self.lookups.failures += 1
            logger.warning("spot price history unavailable", extra={"reason": str(exc)})
            return document
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.lookups.failures += 1
            logger.error("bad spot price history response", extra={"reason": repr(exc)})
            return document
        points = sorted(known.items())
        # Keep what can still be asked for: the price in force at the horizon, and after.
        horizon = min(since_ms, now_ms - SPOT_KEEP_SECONDS * 1000)
        before = [p for p in points if p[0] <= horizon][-1:]
        points = before + [p for p in points if p[0] > horizon]
        if not points:
            return None
        from_ms = int(document["from_ms"]) if covered and document else since_ms
        updated = {"points": points, "fetched_ms": now_ms, "from_ms": from_ms}
        self._store(key, updated, SPOT_KEEP_SECONDS)
        return updated

    # --- the cache ------------------------------------------------------------------

    def _cached(self, key: str, ttl_seconds: float) -> dict[str, Any] | None:
        now = self.clock()
        memo = self._memo.get(key)
        if memo is not None and now - memo[0] < min(ttl_seconds, SPOT_REFRESH_SECONDS):
            return memo[1]  # type: ignore[no-any-return]
        if self.dynamodb is None or self.table is None:
            return None
        self.lookups.cache_reads += 1
        try:
            item = self.dynamodb.get_item(TableName=self.table, Key={"key": {"S": key}}).get("Item")
            if item is None or int(item.get("expires_at", {}).get("N", "0")) < now:
                return None
            document = json.loads(item["document"]["S"])
        except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
            logger.warning("price cache unreadable", extra={"key": key, "reason": str(exc)})
            return None
        self._memo[key] = (now, document)
        return document  # type: ignore[no-any-return]

    def _store(self, key: str, document: Mapping[str, Any], ttl_seconds: float) -> None:
        now = self.clock()
        self._memo[key] = (now, dict(document))
        if self.dynamodb is None or self.table is None:
            return
        self.lookups.cache_writes += 1
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "key": {"S": key},
                    "document": {"S": json.dumps(document, sort_keys=True)},
                    "expires_at": {"N": str(int(now + ttl_seconds))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("price cache not written", extra={"key": key, "reason": str(exc)})


def _quote(document: Mapping[str, Any]) -> Quote:
    price = document.get("usd_per_hour")
    if price is None:
        return Quote((), str(document["source"]))
    return Quote((Segment(0, float(price)),), str(document["source"]))


def _price_from(price_list: list[Any], unit: str) -> float | None:
    """The USD price per `unit` in `GetProducts`' PriceList (JSON strings, AWS's
    documented shape: `terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD`)."""
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        for term in product["terms"].get("OnDemand", {}).values():
            for dimension in term["priceDimensions"].values():
                if dimension.get("unit") != unit:
                    continue
                price = float(dimension["pricePerUnit"]["USD"])
                if price > 0 and price == price and price != float("inf"):
                    return price
    return None
