"""Reporting never kills the job: throttling and 5xx are retried with backoff within
the budget, then dropped with a count and exit status 0 (SPEC §12).

The faults are real HTTP responses from a proxy in front of moto (moto never
throttles), so botocore parses them as it would AWS's.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from tests.integration.kit.conftest import (
    ARRAY,
    THROTTLING,
    UNAVAILABLE,
    Aws,
    FaultProxy,
    rows,
    run_kit,
    spool_lines,
)


def through(proxy: tuple[FaultProxy, str], env: dict[str, str]) -> dict[str, str]:
    return {**env, "AWS_ENDPOINT_URL": proxy[1], "SPAWN_REPORT_BUDGET_SECONDS": "3"}


def test_throttled_metrics_are_retried_then_dropped_with_exit_0(
    aws: Aws,
    kit_env: dict[str, str],
    fault_proxy: tuple[FaultProxy, str],
    spool_dir: Path,
) -> None:
    proxy, _ = fault_proxy
    proxy.faults["PutMetricData"] = replace(THROTTLING)
    env = through(fault_proxy, kit_env)
    for value in ("1", "2", "3"):
        assert run_kit(env, "metric", "Processed", value, "--unit", "Count").returncode == 0

    result = run_kit(env, "flush")

    assert result.returncode == 0
    attempts = proxy.seen["PutMetricData"]
    assert attempts >= 2  # retried, with backoff, within the 3 s budget
    assert result.stderr.splitlines() == [
        f"spawn-report: dropped 3 metric value(s) in Spawn/Workers after {attempts} "
        "attempt(s): Throttling: Rate exceeded"
    ]
    assert spool_lines(spool_dir) == []  # dropped, not left to grow
    assert aws.metric("Spawn/Workers", "Processed", {"ArrayId": ARRAY}, "SampleCount") == 0


def test_a_5xx_on_the_progress_row_is_retried_then_dropped_with_exit_0(
    aws: Aws, kit_env: dict[str, str], fault_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, _ = fault_proxy
    proxy.faults["PutItem"] = replace(UNAVAILABLE)

    result = run_kit(through(fault_proxy, kit_env), "progress", "--status", "completed")

    assert result.returncode == 0
    assert proxy.seen["PutItem"] >= 2
    assert re.fullmatch(
        rf"spawn-report: dropped progress row of {ARRAY}\[7\] after \d+ attempt\(s\): "
        r"ServiceUnavailable: Service unavailable\n",
        result.stderr,
    )
    assert rows(aws) == []


def test_strict_turns_a_dropped_report_into_exit_1(
    kit_env: dict[str, str], fault_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, _ = fault_proxy
    proxy.faults["PutItem"] = replace(UNAVAILABLE)

    result = run_kit(through(fault_proxy, kit_env), "progress", "--status", "failed", "--strict")

    assert result.returncode == 1
    assert "dropped progress row" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_transient_fault_is_absorbed_by_the_retries(
    aws: Aws, kit_env: dict[str, str], fault_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, _ = fault_proxy
    proxy.faults["PutMetricData"] = replace(THROTTLING, times=2)
    proxy.faults["PutItem"] = replace(UNAVAILABLE, times=1)
    env = {**through(fault_proxy, kit_env), "SPAWN_REPORT_BUDGET_SECONDS": "10"}
    assert run_kit(env, "metric", "Processed", "5", "--unit", "Count").returncode == 0

    result = run_kit(env, "progress", "--status", "completed", "--tasks", "5")

    assert (result.returncode, result.stderr) == (0, "")
    assert proxy.seen == {"PutItem": 2, "PutMetricData": 3}
    assert aws.metric("Spawn/Workers", "Processed", {"ArrayId": ARRAY}) == 5
    assert [row["status"]["S"] for row in rows(aws)] == ["completed"]
