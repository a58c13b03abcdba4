"""Prices from the Price List API and spot history, cached in the stats table (moto),
and what happens when they fail: never a failed handler, an `unpriced` reason instead.

moto has no Price List API, so `pricing` is a botocore `Stubber` answering with
responses in AWS's documented `GetProducts` shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.cost.prices import PriceBook
from local.provision import Provisioned
from tests.integration.conftest import container
from tests.integration.test_cost_oracle import SpotHistory

EXPECTED = {"ServiceCode": "AmazonEC2", "Filters": ANY, "MaxResults": 10}
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()


def product(usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry as GetProducts returns it (a JSON string)."""
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": "m5.large", "regionCode": "us-east-1"}},
            "terms": {
                "OnDemand": {
                    "ABC.JRTCKXETXF": {
                        "priceDimensions": {
                            "ABC.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "pricePerUnit": {"USD": usd},
                            }
                        }
                    }
                }
            },
        }
    )


def stubbed_pricing(session: boto3.Session) -> tuple[Any, Stubber]:
    client = session.client("pricing", region_name="us-east-1")
    return client, Stubber(client)


def book(session: boto3.Session, pricing: Any = None, ec2: Any = None) -> PriceBook:
    return PriceBook(
        "us-east-1",
        pricing=pricing,
        ec2=ec2,
        dynamodb=session.client("dynamodb"),
        table=Settings().stats_table,
        clock=lambda: NOW,
    )


def test_on_demand_prices_come_from_the_price_list_and_are_cached(
    session: boto3.Session, infra: Provisioned
) -> None:
    pricing, stub = stubbed_pricing(session)
    stub.add_response(
        "get_products",
        {"PriceList": [product("0.1010000000")], "FormatVersion": "aws_v1"},
        EXPECTED,
    )
    with stub:
        quote = book(session, pricing).on_demand("m5.large", "Linux/UNIX", "default")
        # Another process reads the cache: the stub has no second answer to give.
        again = book(session, pricing).on_demand("m5.large", "Linux/UNIX", "default")
    assert (quote.source, quote.segments[0].usd_per_hour) == ("price-list", 0.101)
    assert again == quote
    stub.assert_no_pending_responses()


def test_a_bad_or_refused_price_list_falls_back_to_the_snapshot(
    session: boto3.Session, infra: Provisioned
) -> None:
    pricing, stub = stubbed_pricing(session)
    stub.add_response("get_products", {"PriceList": ["{not json"]}, EXPECTED)
    stub.add_client_error("get_products", "AccessDeniedException", "not permitted")
    stub.add_response("get_products", {"PriceList": []}, EXPECTED)  # an unknown type
    with stub:
        prices = book(session, pricing)
        bad = prices.on_demand("m5.large", "Linux/UNIX", "default")
        denied = prices.on_demand("c5.xlarge", "Linux/UNIX", "default")
        unknown = prices.on_demand("x9.mystery", "Linux/UNIX", "default")
    assert (bad.source, bad.segments[0].usd_per_hour) == ("snapshot:2026-11-30", 0.096)
    assert denied.source == "snapshot:2026-11-30"
    assert (unknown.source, unknown.priced) == ("unpriced:unknown-instance-type", False)
    assert prices.lookups.failures == 2


def test_spot_lookups_follow_type_and_zone_never_instances(
    session: boto3.Session, infra: Provisioned
) -> None:
    history = SpotHistory({("m5.large", "us-east-1a"): [(NOW - 7200, 0.03), (NOW - 600, 0.05)]})
    prices = book(session, ec2=history)
    quotes = {
        prices.spot("m5.large", "us-east-1a", "Linux/UNIX", int(NOW - 3600) * 1000)
        for _ in range(500)
    }
    assert history.calls == 1
    [quote] = quotes
    assert quote.source == "spot-history"
    assert [s.usd_per_hour for s in quote.segments] == [0.03, 0.05]


def test_a_bad_spot_answer_never_fails_the_tick(session: boto3.Session, infra: Provisioned) -> None:
    class Broken(SpotHistory):
        def paginate(self, **request: Any) -> Any:
            yield {"SpotPriceHistory": [{"ProductDescription": "Linux/UNIX", "SpotPrice": "abc"}]}

    prices = book(session, ec2=Broken({}))
    quote = prices.spot("m5.large", "us-east-1a", "Linux/UNIX", int(NOW) * 1000)
    assert quote.source == "snapshot:2026-11-30"  # the snapshot's spot price
    assert prices.spot("x9.mystery", "us-east-1a", "Linux/UNIX", 0).source.startswith("unpriced:")
    wiring = container(Clients(session), Settings(), clock=lambda: NOW)
    wiring.price_book = prices
    wiring.registry.update(
        "i-1",
        {
            "state": "running",
            "managed": True,
            "array_id": "a-20261204-abcdef",
            "instance_type": "m5.large",
            "lifecycle": "spot",
            "availability_zone": "us-east-1a",
            "running_since_ms": int(NOW - 3600) * 1000,
        },
    )
    document = wiring.fleet_health.tick()
    assert document["cost"]["usd_per_hour"] > 0
