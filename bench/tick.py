"""The progress tick's work when most arrays are long finished: 1,000 finished arrays
and 10 active ones, on moto.

The tick reads the arrays it must look at from a sparse index (only active summaries
carry its key), so its reads follow the active arrays. Figures: DynamoDB items read and
calls made by one steady-state tick, per active array, against reading every summary as
a Scan of the arrays table does (the design before the index), measured in the same run.
"""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime, timedelta

import boto3

from bench.report import Figure
from chalicelib.alerts.publish import AlertPublisher
from chalicelib.core.clients import Clients
from chalicelib.core.settings import Settings
from chalicelib.progress.aggregator import ProgressAggregator
from chalicelib.progress.store import SummaryStore
from local.provision import provision
from testkit.faults import count_calls
from testkit.streams import Workers

FINISHED = 1000
ACTIVE = 10
T0 = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)


def _measure() -> list[Figure]:
    session = boto3.Session(region_name="us-east-1")
    infra = provision(session)
    settings = Settings()
    clients = Clients(session)
    now = [T0]
    store = SummaryStore(clients.dynamodb, settings.arrays_table)
    aggregator = ProgressAggregator(
        clients.dynamodb,
        store,
        settings,
        AlertPublisher(clients.sns, infra.arns["AlertsTopic"], infra.arns["CriticalTopic"]),
        lambda array_id: None,
        clock=lambda: now[0],
    )
    workers = Workers(clients.dynamodb, settings.progress_table, infra.stream_arns["ProgressTable"])

    def tick(at: datetime) -> None:
        now[0] = at
        aggregator.tick(at)

    finished = [workers.write(f"done-{n:04d}", 0, "completed", 1) for n in range(FINISHED)]
    aggregator.handle_stream({"Records": finished})
    tick(T0 + timedelta(seconds=61))  # final figures and array_finished, once each
    later = T0 + timedelta(hours=2)
    tick(later)  # finished over an hour ago: they leave the tick's set
    active = [workers.write(f"live-{n:02d}", i, at=later) for n in range(ACTIVE) for i in range(3)]
    aggregator.handle_stream({"Records": active})
    tick(later + timedelta(seconds=61))  # the new arrays' first recount

    calls = count_calls(clients.dynamodb)
    now[0] = later + timedelta(seconds=121)
    report = aggregator.tick(now[0])
    by_call = dict(calls)
    scanned = sum(
        len(page["Items"])
        for page in clients.dynamodb.get_paginator("scan").paginate(TableName=settings.arrays_table)
    )
    per_active = report.items_read / ACTIVE
    return [
        Figure(
            f"items read by the progress tick per active array, {ACTIVE} active "
            f"+ {FINISHED:,} finished",
            per_active,
            "items/array",
            target=2,
            detail=f"{report.items_read} items ({report.arrays} arrays looked at), "
            f"{sum(by_call.values())} calls: "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_call.items())),
        ),
        Figure(
            "  every summary, as a Scan reads them (same run)",
            scanned,
            "items",
            detail=f"{scanned / report.items_read:.0f}x the tick's reads",
        ),
    ]


def run() -> list[Figure]:
    from moto import mock_aws

    # Every published figure is an EMF line on stdout; keep them off the report.
    with mock_aws(), contextlib.redirect_stdout(io.StringIO()):
        return _measure()
