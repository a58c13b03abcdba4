"""What monitoring a fleet costs a month: the guide's scripts, `per-instance`, `fleet-query`.

Prices come from one data file, `cli/spawn_monitor/prices.json` (AWS's published price
list, with its source and date), which the CLI's `doctor` reads too. Call counts are
measured here, on moto, in the same run:

- workers: one worker's hour as the guide's scripts report it (`put-metric-data` per
  metric, a DynamoDB write per progress update) and as `spawn-report` does
  (`bench.worker_kit`);
- lifecycle: a 100-instance array launched and terminated through the lifecycle
  handler in each mode (EC2, CloudWatch, DynamoDB calls, batches), and through the
  guide's per-event design (`bench.lifecycle._naive`);
- the guide's monitor: one `Scan` of a progress table holding one array's rows, with
  `ReturnConsumedCapacity`, scaled to the fleet's table (a Scan reads every item);
- this system's ticks: one `fleet_tick` and one `progress_tick` over the array, their
  DynamoDB calls and read units, scaled by active arrays (the registry Scan by the fleet).

The workload it prices (stated, not measured): the fleet runs all month (730 h) in
arrays of 100; each instance is replaced once a day (a launch and a termination); one
operator watches each active array (the guide's monitor Scans every 10 s). Items equal
in every design are left out: the console's fleet alarms and dashboards, logs, custom
metric series (the same metrics), EventBridge (free for AWS events).
Lambda duration is priced at `LAMBDA_SECONDS` per invocation at 256 MB (assumed).
In `fleet-query`, the coverage check's `GetMetricData` (every reconcile and setup run,
one metric analyzed per running instance) is priced per metric requested, as the CLI's
`doctor` prices it (`COVERAGE_RUNS_PER_MONTH`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3

from bench.report import Figure
from spawn_monitor.pricing import COVERAGE_RUNS_PER_MONTH, PRICE_LIST
from testkit.faults import count_calls

HOURS = 730.0
ARRAY = 100
REPLACED_PER_DAY = 1
SCAN_EVERY_SECONDS = 10
LAMBDA_SECONDS = 0.5
LAMBDA_GB = 0.25
FLEETS = (100, 1_000, 10_000)
DESIGNS = ("guide", "per-instance", "fleet-query")


@dataclass(frozen=True)
class Measured:
    """Calls measured on moto, per unit of work."""

    worker_hour: dict[str, dict[str, int]]  # design -> operation -> calls
    lifecycle_per_instance: dict[str, dict[str, float]]  # design -> operation -> calls
    batches_per_instance: float  # lifecycle invocations per instance launched+terminated
    scan_rru_per_row: float  # read units a Scan spends per progress row
    tick_calls_per_array: dict[str, float]  # operation -> calls per active array per minute
    registry_rru_per_instance: float  # fleet_tick's registry Scan, per instance


def _scan_units(client: Any, table: str) -> float:
    units = 0.0
    for page in client.get_paginator("scan").paginate(
        TableName=table, ReturnConsumedCapacity="TOTAL"
    ):
        units += float(page.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
    return units


def _lifecycle(mode: str) -> tuple[dict[str, float], float, float, float, dict[str, float]]:
    """Launch and terminate one array through the lifecycle in `mode`; then one tick of
    each kind. Returns calls per instance, batches per instance, scan read units per
    progress row, registry read units per instance, tick calls per array."""
    from bench.lifecycle import _event, _fast_pacer, _launch_n
    from chalicelib.alarms.fleet_query import FleetQueryAlarms
    from chalicelib.alarms.modes import AlarmModes, TelemetryEnrichment
    from chalicelib.container import Container
    from chalicelib.core.clients import Clients
    from chalicelib.core.settings import Settings
    from local.provision import provision

    session = boto3.Session(region_name="us-east-1")
    infra = provision(session)
    topic = infra.arns["AlertsTopic"]
    settings = replace(Settings(), alarm_mode=mode)
    clients = Clients(session)
    ids = _launch_n(clients.ec2, ARRAY)
    modes = AlarmModes(
        mode,
        FleetQueryAlarms(clients.cloudwatch, settings, topic_arn=topic, region="us-east-1"),
        TelemetryEnrichment(None),
    )
    if mode == "fleet-query":
        modes.fleet_alarms.ensure()  # setup made them before the launch
    wiring = Container(settings, clients, pacer=_fast_pacer)
    wiring.alarm_modes = modes  # no observabilityadmin on moto
    lifecycle = wiring.lifecycle
    calls = count_calls(clients.ec2, clients.cloudwatch, clients.dynamodb)
    start = datetime.now(UTC)
    running = [_event(i, "running", 0, n, at=start) for n, i in enumerate(ids)]
    ended = [_event(i, "terminated", 600, ARRAY + n, at=start) for n, i in enumerate(ids)]
    batches = 0
    for events in (running, ended):
        for first in range(0, ARRAY, ARRAY):
            lifecycle.handle(events[first : first + ARRAY])
            batches += 1
    per_instance = {k: v / ARRAY for k, v in calls.items()}
    _write_rows(clients.dynamodb, settings.progress_table, ids)
    scan = _scan_units(clients.dynamodb, settings.progress_table) / ARRAY
    registry_units = _scan_units(clients.dynamodb, settings.instances_table) / ARRAY
    ticks = _ticks(session, settings)
    return per_instance, batches / ARRAY, scan, registry_units, ticks


def _write_rows(dynamodb: Any, table: str, ids: list[str]) -> None:
    """One SPEC §4 row per worker, as the kit writes it."""
    for index, instance_id in enumerate(ids):
        dynamodb.put_item(
            TableName=table,
            Item={
                "array_id": {"S": "bench-20260127-000001"},
                "task_index": {"N": str(index)},
                "status": {"S": "running"},
                "tasks_completed": {"N": "412"},
                "tasks_total": {"N": "1000"},
                "error_count": {"N": "3"},
                "last_update": {"S": "2026-01-27T10:00:00Z"},
                "instance_id": {"S": instance_id},
                "hostname": {"S": "ip-10-0-0-1.ec2.internal"},
            },
        )


def _ticks(session: boto3.Session, settings: Any) -> dict[str, float]:
    """DynamoDB calls of one progress tick for the one active array (per minute)."""
    from chalicelib.core.clients import Clients
    from chalicelib.fleet.stats import Stats
    from chalicelib.progress.aggregator import ProgressAggregator
    from chalicelib.progress.store import SummaryStore

    clients = Clients(session)
    calls = count_calls(clients.dynamodb)
    stats = Stats(clients.dynamodb, settings.stats_table)
    aggregator = ProgressAggregator(
        clients.dynamodb,
        SummaryStore(clients.dynamodb, settings.arrays_table),
        settings,
        _NoAlerts(),  # type: ignore[arg-type]
        stats.array_info,
    )
    aggregator.tick(datetime.now(UTC))
    return {k: float(v) for k, v in calls.items()}


class _NoAlerts:
    def publish(self, alert: Any) -> None:
        """The tick's alerts are not what is counted here."""


def measure() -> Measured:
    from moto import mock_aws

    from bench import worker_kit
    from bench.lifecycle import _naive_per_instance

    guide_hour, kit_hour = worker_kit._guide(1), worker_kit._kit(1)
    lifecycle: dict[str, dict[str, float]] = {}
    for mode in ("per-instance", "fleet-query"):
        with mock_aws():
            per_instance, batches, scan, registry, ticks = _lifecycle(mode)
        lifecycle[mode] = per_instance
    with mock_aws():
        lifecycle["guide"] = _naive_per_instance(ARRAY)
    return Measured(
        worker_hour={
            "guide": guide_hour.by_operation,
            "per-instance": kit_hour.by_operation,
            "fleet-query": kit_hour.by_operation,
        },
        lifecycle_per_instance=lifecycle,
        batches_per_instance=batches,
        scan_rru_per_row=scan,
        tick_calls_per_array=ticks,
        registry_rru_per_instance=registry,
    )


def monthly(design: str, instances: int, m: Measured) -> dict[str, float]:
    """The month's cost of one design by service, in USD."""
    cw, lam, ddb = PRICE_LIST["cloudwatch"], PRICE_LIST["lambda"], PRICE_LIST["dynamodb"]
    sqs, sns = PRICE_LIST["sqs"], PRICE_LIST["sns"]
    arrays = math.ceil(instances / ARRAY)
    worker_hours = instances * HOURS
    launches = instances * REPLACED_PER_DAY * HOURS / 24
    worker = m.worker_hour[design]
    life = m.lifecycle_per_instance[design]
    minutes = HOURS * 60

    put_metric_data = worker.get("PutMetricData", 0) * worker_hours
    worker_writes = (worker.get("PutItem", 0) + worker.get("UpdateItem", 0)) * worker_hours
    alarm_api = sum(v for k, v in life.items() if k in _CLOUDWATCH_CALLS) * launches
    coverage = 0.0
    if design == "fleet-query":
        # Two query alarms, each billed per metric it analyzes: one per running instance.
        alarms = 2 * instances * cw["metrics_insights_alarm_per_metric_analyzed"]
        # The coverage check runs the status query (GetMetricData) on every reconcile and
        # setup run: one metric analyzed per running instance.
        coverage = (
            COVERAGE_RUNS_PER_MONTH * instances / 1000 * cw["get_metric_data_per_1000_metrics"]
        )
    else:
        alarms = 2 * instances * cw["standard_alarm"]
    cloudwatch = (
        alarms
        + coverage
        + put_metric_data / 1000 * cw["put_metric_data_per_1000"]
        + alarm_api / 1000 * cw["api_requests_per_1000"]
    )

    if design == "guide":
        # One Lambda per event; the monitor Scans the whole table every 10 s per watcher.
        invocations = 2 * launches
        scans = arrays * HOURS * 3600 / SCAN_EVERY_SECONDS
        read_units = scans * instances * m.scan_rru_per_row
        write_units = worker_writes + 0.0
        queue_requests = 0.0
    else:
        schedules = 3 * minutes + HOURS * 4 + HOURS / 6  # three 1-min ticks, reconcile, setup
        stream = worker_writes / ARRAY  # the progress stream's batches (up to 100 rows)
        invocations = schedules + stream + m.batches_per_instance * launches
        ddb_calls = {k: v for k, v in life.items() if k in _DYNAMODB_CALLS}
        tick_reads = sum(m.tick_calls_per_array.values()) * arrays * minutes
        read_units = (
            sum(v for k, v in ddb_calls.items() if k in _READS) * launches
            + tick_reads
            + minutes * instances * m.registry_rru_per_instance  # fleet_tick's registry Scan
            + worker_writes  # each stream batch reads the array's summary (at most 1/row)
        )
        write_units = (
            worker_writes * 2  # the row, and the summary it moves
            + sum(v for k, v in ddb_calls.items() if k not in _READS) * launches
        )
        # EventBridge → SQS: a send per event; the poller's receives and deletes per batch.
        queue_requests = 2 * launches + 2 * m.batches_per_instance * launches
    gb_seconds = invocations * LAMBDA_SECONDS * LAMBDA_GB
    return {
        "CloudWatch": cloudwatch,
        "Lambda": invocations / 1e6 * lam["requests_per_million"] + gb_seconds * lam["gb_second"],
        "DynamoDB": write_units / 1e6 * ddb["write_request_units_per_million"]
        + read_units / 1e6 * ddb["read_request_units_per_million"],
        "SQS": queue_requests / 1e6 * sqs["requests_per_million"],
        "SNS": 0.0 * sns["publishes_per_million"],  # alerts: the same few in every design
    }


_CLOUDWATCH_CALLS = {"PutMetricAlarm", "DeleteAlarms", "DescribeAlarms"}
_DYNAMODB_CALLS = {"GetItem", "BatchGetItem", "UpdateItem", "PutItem", "Query", "Scan"}
_READS = {"GetItem", "BatchGetItem", "Query", "Scan"}


def table(m: Measured, fleets: tuple[int, ...]) -> list[str]:
    lines = [f"   {'instances':>9}  " + "  ".join(f"{d:>14}" for d in DESIGNS)]
    for n in fleets:
        totals = [sum(monthly(d, n, m).values()) for d in DESIGNS]
        lines.append(f"   {n:>9,}  " + "  ".join(f"{'$' + format(t, ',.2f'):>14}" for t in totals))
    return lines


def run(instances: int | None = None) -> list[Figure]:
    m = measure()
    fleets = (instances,) if instances else FLEETS
    print(f"   monthly cost, USD (prices {PRICE_LIST['as_of']}, {PRICE_LIST['source']})")
    for line in table(m, fleets):
        print(line)
    for n in fleets:
        for design in DESIGNS:
            parts = monthly(design, n, m)
            print(
                f"   {n:>9,} {design:>13}: " + ", ".join(f"{k} ${v:,.2f}" for k, v in parts.items())
            )
    figures = []
    at = instances or 1_000
    guide = sum(monthly("guide", at, m).values())
    for design in ("per-instance", "fleet-query"):
        ours = sum(monthly(design, at, m).values())
        figures.append(
            Figure(
                f"monthly cost at {at:,} instances, {design} / the guide's scripts",
                ours / guide,
                "x",
                target=0.5,
                detail=f"${ours:,.2f} vs ${guide:,.2f}",
            )
        )
    alarm_writes = {
        d: sum(
            v
            for k, v in m.lifecycle_per_instance[d].items()
            if k in {"PutMetricAlarm", "DeleteAlarms"}
        )
        for d in ("per-instance", "fleet-query")
    }
    figures.append(
        Figure(
            "alarm writes per instance launched and terminated, fleet-query (per-instance)",
            alarm_writes["fleet-query"],
            "calls",
            target=0,
            detail=f"per-instance {alarm_writes['per-instance']:.2f}",
        )
    )
    return figures
