"""`make rehearse`: the deploy script against a moto server, then checks (infra.rehearse)."""

from __future__ import annotations

from typing import Any

from infra.package import Packaged
from infra.rehearse import Report, check_statically, moto_cannot_create, rehearse


def test_the_rehearsal_passes_and_names_what_it_checked_statically(packaged: Packaged) -> None:
    lines: list[str] = []
    report = rehearse(packaged, out=lines.append)
    assert [check.what for check in report.failed] == []
    created = {kind for kind, _, _ in report.created}
    assert {
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
    } <= created
    left_out = {kind for kind, _ in report.left_out.values()}
    assert {"AWS::SecretsManager::Secret", "AWS::SNS::Subscription"} <= left_out
    static = [check.what for check in report.checks if check.static]
    assert any("secret spawn-fleet-monitor/cursor-secret" in what for what in static)
    assert any("TTL on expires_at" in what for what in static)
    live = [check.what for check in report.checks if not check.static]
    assert any("stream NEW_AND_OLD_IMAGES" in what for what in live)
    assert any("retained after delete" in what for what in live)
    assert any("no changes" in what for what in live)
    assert any(line.endswith("deleted") for line in lines)


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
