"""The published metrics list: what the backend may emit is exactly what it lists."""

from __future__ import annotations

from collections import Counter

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.contract import catalog
from chalicelib.contract.catalog import UnpublishedMetric, check_emitted
from chalicelib.core.observability import emit

# SPEC §6, verbatim: every metric the backend publishes, with its dimension sets.
SPEC_METRICS = [
    ("Spawn/SpotInterruptions", "Count", ()),
    ("Spawn/SpotInterruptions", "Count", ("ArrayId",)),
    ("Spawn/SpotInterruptions", "RebalanceRecommendations", ()),
    *(
        ("Spawn/Arrays", name, ("ArrayId",))
        for name in (
            "WorkersTotal",
            "WorkersRunning",
            "WorkersCompleted",
            "WorkersFailed",
            "WorkersStalled",
            "TasksCompleted",
            "PercentComplete",
        )
    ),
    ("Spawn/Fleet", "ActiveInstances", ()),
    ("Spawn/Fleet", "UnhealthyInstances", ()),
    ("Spawn/Fleet", "UnhealthyPercent", ()),
]


def test_the_spec_metrics_are_listed_as_the_backends() -> None:
    for namespace, name, dimensions in SPEC_METRICS:
        [metric] = catalog.find(namespace, name, dimensions)
        assert metric.publisher == catalog.BACKEND


def test_no_series_is_listed_twice() -> None:
    keys = Counter((m.namespace, m.name, tuple(sorted(m.dimensions))) for m in catalog.PUBLISHED)
    assert [key for key, n in keys.items() if n > 1] == []


def test_workers_metrics_follow_the_guide() -> None:
    assert catalog.is_published("Spawn/Workers", "ErrorCount", ("InstanceId", "ArrayIndex"))
    assert catalog.is_published("Spawn/GPU", "GPUTemperature", ("InstanceId",))
    # The guide names timings `{Operation}Duration`.
    assert catalog.is_published("Spawn/Performance", "S3DownloadDuration", None)
    assert not catalog.is_published("Spawn/Performance", "S3Download", None)


def test_emitting_a_listed_metric_is_accepted() -> None:
    check_emitted("Spawn/Fleet", {"ActiveArrays": "Count"}, [])
    check_emitted("Spawn/Arrays", {"PercentComplete": "Percent"}, ["ArrayId"])


@pytest.mark.parametrize(
    ("namespace", "units", "dimensions"),
    [
        ("Spawn/Fleet", {"ActiveInstancez": "Count"}, []),  # a typo
        ("Spawn/Fleet", {"ActiveInstances": "Count"}, ["ArrayId"]),  # wrong series
        ("Spawn/Fleet", {"UnhealthyPercent": "Count"}, []),  # wrong unit
        ("Spawn/Workers", {"TasksCompleted": "Count"}, []),  # the workers', not ours
    ],
)
def test_emitting_an_unlisted_metric_raises(
    namespace: str, units: dict[str, str], dimensions: list[str]
) -> None:
    with pytest.raises(UnpublishedMetric, match=r"catalog\.py"):
        check_emitted(namespace, units, dimensions)


def test_emit_itself_refuses_an_unlisted_metric(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnpublishedMetric):
        emit("Spawn/Fleet", {"Mystery": (MetricUnit.Count, 1)})
    assert capsys.readouterr().out == ""  # nothing half-published
