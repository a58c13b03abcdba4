from __future__ import annotations

import io
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.core.observability import emit
from local.emf import EmfStdout, metric_data, readable


def _capture(capsys: Any) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out.strip())  # type: ignore[no-any-return]


def test_emit_without_dimensions_has_no_service_dimension(capsys: Any) -> None:
    emit("Spawn/SpotInterruptions", {"Count": (MetricUnit.Count, 1)})
    document = _capture(capsys)
    assert document["Count"] == [1.0] or document["Count"] == 1.0
    assert "service" not in document
    [(namespace, data)] = metric_data(document)
    assert namespace == "Spawn/SpotInterruptions"
    assert data[0]["Dimensions"] == []
    assert data[0]["Unit"] == "Count"


def test_emit_with_dimension_becomes_a_dimensioned_datum(capsys: Any) -> None:
    emit("Spawn/Arrays", {"WorkersTotal": (MetricUnit.Count, 12)}, {"ArrayId": "render-1"})
    [(_, data)] = metric_data(_capture(capsys))
    assert data[0]["Dimensions"] == [{"Name": "ArrayId", "Value": "render-1"}]
    assert data[0]["Values"] == [12.0]


def test_bridge_turns_emf_lines_into_metrics_and_passes_other_lines() -> None:
    sunk: list[tuple[str, list[dict[str, Any]]]] = []
    out = io.StringIO()
    bridge = EmfStdout(out, lambda ns, data: sunk.append((ns, data)), lambda: "[fn] ")
    document = {
        "_aws": {
            "Timestamp": 1769508000000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "N",
                    "Dimensions": [["A"]],
                    "Metrics": [{"Name": "M", "Unit": "Count"}],
                }
            ],
        },
        "A": "a",
        "M": 3,
    }
    bridge.write(json.dumps(document)[:10])
    assert sunk == []  # half a line is not a line yet
    bridge.write(json.dumps(document)[10:] + "\nplain text\n")
    assert sunk[0][0] == "N"
    assert sunk[0][1][0]["Values"] == [3.0]
    assert out.getvalue() == "[fn] plain text\n"


def test_readable_shortens_powertools_log_lines() -> None:
    line = json.dumps(
        {"level": "INFO", "location": "f:1", "message": "hi", "service": "s", "instance": "i-1"}
    )
    assert readable(line) == 'INFO    f:1: hi {"instance": "i-1"}'
    assert readable("not json") == "not json"


def test_a_malformed_emf_document_is_dropped_without_breaking_the_function() -> None:
    sunk: list[object] = []
    out = io.StringIO()
    bridge = EmfStdout(out, lambda ns, data: sunk.append(ns), lambda: "")
    bridge.write(json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{}]}}) + "\n")
    assert sunk == []
    assert "EMF document ignored" in out.getvalue()
