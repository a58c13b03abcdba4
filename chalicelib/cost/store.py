"""The cost documents in the stats table, and the fleet tick's cost step.

`cost#array#{id}` holds an array's figures and `as_of`, rewritten only when a figure
changed, so a finished array reads the same, `as_of` included, on every read.
`cost#month#{YYYY-MM}` is the fleet's ledger of the month (USD per day).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import batch_get, chunked
from chalicelib.cost.accrual import Accrual, accrue
from chalicelib.cost.prices import PriceBook

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

BATCH_WRITE_MAX = 25


def array_cost_key(array_id: str) -> str:
    return f"cost#array#{array_id}"


def month_key(now: datetime) -> str:
    return f"cost#month#{now:%Y-%m}"


@dataclass
class CostStore:
    """Reads and writes of the cost documents.

    Args:
        dynamodb: a DynamoDB client.
        table: `STATS_TABLE`.
    """

    dynamodb: DynamoDBClient
    table: str

    def array_costs(self, array_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored cost documents of these arrays (absent: none yet), one
        BatchGetItem per 100."""
        ids = sorted(set(array_ids))
        keys = [{"key": {"S": array_cost_key(a)}} for a in ids]
        found: dict[str, dict[str, Any]] = {}
        for item in batch_get(self.dynamodb, self.table, keys):
            document = json.loads(item["document"]["S"])
            found[str(document["array_id"])] = document
        return found

    def array_cost(self, array_id: str) -> dict[str, Any] | None:
        return self.array_costs([array_id]).get(array_id)

    def save_changed(
        self, figures: Mapping[str, Mapping[str, Any]], now: datetime
    ) -> dict[str, dict[str, Any]]:
        """Store the arrays whose figures differ from what is stored, stamped `as_of`
        now; returns every array's document as stored after the call."""
        stored = self.array_costs(figures)
        as_of = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        changed: dict[str, dict[str, Any]] = {}
        for array_id, values in figures.items():
            document = {**values, "array_id": array_id}
            before = stored.get(array_id)
            if before is not None and {k: v for k, v in before.items() if k != "as_of"} == document:
                continue
            changed[array_id] = {**document, "as_of": as_of}
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "key": {"S": array_cost_key(a)},
                        "document": {"S": json.dumps(d, sort_keys=True)},
                    }
                }
            }
            for a, d in changed.items()
        ]
        for chunk in chunked(requests, BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self.table: list(chunk)}
            while pending:
                response = self.dynamodb.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
        return {**stored, **changed}

    def month(self, now: datetime) -> dict[str, float]:
        item = self.dynamodb.get_item(TableName=self.table, Key={"key": {"S": month_key(now)}}).get(
            "Item"
        )
        if item is None:
            return {}
        return {str(k): float(v) for k, v in json.loads(item["document"]["S"]).items()}

    def save_month(self, now: datetime, days: Mapping[str, float]) -> None:
        self.dynamodb.put_item(
            TableName=self.table,
            Item={
                "key": {"S": month_key(now)},
                "document": {"S": json.dumps(dict(days), sort_keys=True)},
            },
        )


@dataclass
class CostTick:
    """The fleet tick's cost step: price every managed row, store what changed.

    Args:
        store: the cost documents.
        book: the price book.
        default_budget: `ARRAY_BUDGET_USD` (None: no default budget).
    """

    store: CostStore
    book: PriceBook
    default_budget: float | None = None

    def run(self, rows: Iterable[Mapping[str, Any]], now: datetime) -> Accrual:
        month = self.store.month(now)
        accrual = accrue(rows, self.book, now, self.default_budget, month)
        self.store.save_changed(accrual.arrays, now)
        if accrual.day_usd != month:
            self.store.save_month(now, accrual.day_usd)
        logger.info(
            "cost accrued",
            extra={
                "arrays": len(accrual.arrays),
                "usd_per_hour": accrual.fleet["usd_per_hour"],
                "price_api_calls": self.book.lookups.api_calls,
            },
        )
        return accrual
