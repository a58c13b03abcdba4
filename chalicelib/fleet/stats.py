"""The stats table (`STATS_TABLE`): counters, fleet snapshots and array registrations.

`Stats` is one client of the table for the three kinds of item it holds, each in its
own module: `chalicelib.fleet.counters` (interruption counters, sharded),
`chalicelib.fleet.snapshots` (the `GET /fleet` documents) and
`chalicelib.fleet.registrations` (arrays from their instances' spawn tags).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.fleet.counters import COUNTER_SHARDS, Counters
from chalicelib.fleet.registrations import Registrations
from chalicelib.fleet.snapshots import Documents

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Stats(Counters, Documents, Registrations):
    """Reads and writes of the stats table.

    Args:
        dynamodb: a DynamoDB client.
        table: `STATS_TABLE`.
        shards: the counters' shards (`COUNTER_SHARDS`; writers must use the same).
    """

    def __init__(self, dynamodb: DynamoDBClient, table: str, shards: int = COUNTER_SHARDS) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.shards = shards
