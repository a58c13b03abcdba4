"""`make rehearse`: the deploy script against a moto server, then checks (infra.rehearse)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from infra.package import Packaged
from infra.rehearse import Report, check_statically, moto_cannot_create, rehearse

ROOT = Path(__file__).resolve().parents[2]


def test_make_rehearse_prints_what_it_created_and_checked() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "rehearse"],  # noqa: S607 - the README's command
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^rehearsal passed: \d+ checks on moto, \d+ static, 0 failed$", out, re.M)
    created = out[out.index("created on moto") : out.index("moto cannot create")]
    for kind in (
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
    ):
        assert f"  {kind} " in created, kind
    left_out = out[out.index("moto cannot create") : out.index("checks:")]
    for kind in ("AWS::SecretsManager::Secret", "AWS::SNS::Subscription", "AWS::SQS::QueuePolicy"):
        assert f"  {kind} " in left_out, kind
    for check in (
        "ok   (static) secret spawn-fleet-monitor/cursor-secret",
        "ok   (static) table spawn-instances: TTL on expires_at",
        "ok   (static) topic spawn-alerts delivers to AlertNotifications",
        "ok   table spawn-progress: stream NEW_AND_OLD_IMAGES",
        "ok   event source LifecycleLifecycleSqsEventSource: spawn-lifecycle-events -> Lifecycle",
        "ok   deploy again: spawn-fleet-monitor: no changes",
        "ok   table spawn-progress and its rows retained after delete",
    ):
        assert check in out, check


def test_a_missing_table_fails_the_rehearsal(packaged: Packaged, tmp_path: Path) -> None:
    broken = Packaged(tmp_path / "broken", packaged.stage, packaged.region)
    shutil.copytree(packaged.directory, broken.directory)
    sam = broken.sam()
    del sam["Resources"]["StatsTable"], sam["Outputs"]["StatsTableName"]
    broken.sam_path.write_text(json.dumps(sam))
    report = rehearse(broken, out=lambda _: None)
    assert [check.what for check in report.failed] == [
        "table spawn-fleet-stats (STATS_TABLE) exists"
    ]


def test_a_type_moto_cannot_create_fails_without_a_static_check(translated: dict[str, Any]) -> None:
    template = {
        **translated,
        "Resources": {
            **translated["Resources"],
            "Pipe": {"Type": "AWS::Pipes::Pipe", "Properties": {}},
        },
    }
    assert moto_cannot_create(template)["Pipe"] == (
        "AWS::Pipes::Pipe",
        "not supported by moto's CloudFormation",
    )
    report = Report(left_out={"Pipe": ("AWS::Pipes::Pipe", "not supported")})
    check_statically(template, report)
    assert [c.what for c in report.failed] == [
        "AWS::Pipes::Pipe Pipe: left out on moto and no static check"
    ]


def test_the_report_fails_when_any_check_fails() -> None:
    report = Report()
    report.check(True, "a table")
    report.check(False, "a queue")
    assert list(report.lines())[-1] == "rehearsal FAILED: 2 checks on moto, 0 static, 1 failed"
