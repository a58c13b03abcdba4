"""The kit and the console share one list of metrics (`chalicelib/contract/catalog.py`).

Both sides are checked: every series the kit publishes on its own (`progress`, `gpu`,
`timed`) is in the list as the workers', with its unit; and every workers' series the
console reads (fleet alarms, dashboards) is one the kit publishes. `spawn-report metric`
publishes whatever its user names, so it is not part of this contract.

The kit is run as a spawn worker runs it: it knows its array and instance (its progress
row needs them), so its metrics carry `ArrayId` and, for GPUs, `InstanceId`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from spawn_report import Identity, Reporter, Settings
from spawn_report.gpu import parse

from chalicelib.console.alarms import Topics, fleet_alarms
from chalicelib.console.dashboards import Reference, references
from chalicelib.console.description import Deployment, describe
from chalicelib.contract import catalog
from chalicelib.core.settings import Settings as BackendSettings

T0 = 1_769_508_000.0
WHO = Identity("render-20260127-a1b2c3", 7, "i-0123456789abcdef7", "ip-10-0-0-7", "us-east-1")
TOPICS = Topics("arn:aws:sns:us-east-1:1:a", "arn:aws:sns:us-east-1:1:c", None)
WORKER_NAMESPACES = (catalog.WORKER_METRICS, catalog.GPU, catalog.PERFORMANCE)

Shape = tuple[str, str, tuple[str, ...], str]  # namespace, metric, dimension names, unit


def kit_shapes(tmp_path: Path) -> set[Shape]:
    """Every series the kit's own commands spool, each report kind once."""
    settings = Settings(
        spool_dir=tmp_path / "spool", background=False, flush_seconds=3600, rows_at_once=False
    )
    report = Reporter(settings, identity=WHO, clock=lambda: T0)
    assert report.progress("running", 10, tasks_total=20, error_count=1)  # progress
    report.gpus(parse("0, 45, 1024, 24576, 60, 70.50\n"))  # gpu: every field nvidia-smi gives
    assert report.duration("Processing", 12.5)  # timed
    entries = [json.loads(line) for line in (settings.spool_dir / "pending.jsonl").open()]
    return {
        (e["namespace"], e["name"], tuple(sorted(e["dimensions"])), e["unit"])
        for e in entries
        if e["kind"] == "metric"
    }


def test_the_kit_publishes_the_fleet_counters_and_its_gpu_and_timing_series(
    tmp_path: Path,
) -> None:
    shapes = kit_shapes(tmp_path)

    assert ("Spawn/Workers", "TasksCompleted", (), "Count") in shapes
    assert ("Spawn/Workers", "ErrorCount", (), "Count") in shapes
    assert {s[0] for s in shapes} == set(WORKER_NAMESPACES)
    assert len(shapes) == 2 + 5 + 1


def test_every_series_the_kit_publishes_is_listed_as_the_workers(tmp_path: Path) -> None:
    for namespace, name, dimensions, unit in kit_shapes(tmp_path):
        listed = catalog.find(namespace, name, dimensions)
        assert [(m.publisher, m.unit) for m in listed] == [(catalog.WORKERS, unit)], (
            f"{namespace} {name} {list(dimensions)} ({unit}) is published by the kit: "
            "list it in chalicelib/contract/catalog.py"
        )


def _read_by(reference: Reference, shapes: set[Shape]) -> bool:
    """Whether a console reference sees one of the kit's series."""
    for namespace, name, dimensions, _ in shapes:
        if namespace != reference.namespace:
            continue
        if reference.name not in ("*", name):
            continue
        if reference.dimensions is None or sorted(reference.dimensions) == list(dimensions):
            return True
    return False


def test_the_fleet_alarms_read_series_the_kit_publishes(tmp_path: Path) -> None:
    shapes = kit_shapes(tmp_path)
    alarms, _ = fleet_alarms(BackendSettings(), "us-east-1", TOPICS)
    read = [
        Reference(
            m["MetricStat"]["Metric"]["Namespace"],
            m["MetricStat"]["Metric"]["MetricName"],
            tuple(d["Name"] for d in m["MetricStat"]["Metric"]["Dimensions"]),
        )
        for alarm in alarms
        for m in alarm.request.get("Metrics", [])
        if "MetricStat" in m and m["MetricStat"]["Metric"]["Namespace"] in WORKER_NAMESPACES
    ]

    # spawn-fleet-error-rate (errors, completed) and spawn-low-throughput (tasks).
    assert sorted((r.name, r.dimensions) for r in read) == [
        ("ErrorCount", ()),
        ("TasksCompleted", ()),
        ("TasksCompleted", ()),
    ]
    assert all(_read_by(r, shapes) for r in read)


def _dashboard_references(namespace: str) -> list[Reference]:
    deployment = Deployment("us-east-1", "123456789012", TOPICS)
    console = describe(BackendSettings(), deployment, [], datetime.fromtimestamp(T0, UTC))
    body = json.loads(console.dashboards["spawn-fleet"])
    return [r for r in references(body) if r.namespace == namespace]


@pytest.mark.parametrize("namespace", [catalog.WORKER_METRICS, catalog.GPU])
def test_the_fleet_dashboard_reads_series_the_kit_publishes(namespace: str, tmp_path: Path) -> None:
    shapes = kit_shapes(tmp_path)
    read = _dashboard_references(namespace)

    assert read
    assert [r for r in read if not _read_by(r, shapes)] == []


def test_the_fleet_dashboard_shows_the_kits_timings(tmp_path: Path) -> None:
    # The percentile widgets also read the guide scripts' shape (InstanceType), which
    # the kit does not publish; what matters is that the kit's own timings show.
    kit = {s for s in kit_shapes(tmp_path) if s[0] == catalog.PERFORMANCE}
    read = _dashboard_references(catalog.PERFORMANCE)

    assert kit
    assert all(any(_read_by(r, {shape}) for r in read) for shape in kit)
