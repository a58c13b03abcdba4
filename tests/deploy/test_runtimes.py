"""Every packaged function runs on a Lambda runtime AWS still supports (SPEC §13)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from infra.runtimes import load, unsupported


def test_every_function_is_on_a_supported_runtime(sam: dict[str, Any]) -> None:
    # Fails on the day AWS deprecates the runtime: move to the next one then.
    assert unsupported(sam, load(), datetime.now(UTC).date()) == []
    runtimes = {
        r["Properties"]["Runtime"]
        for r in sam["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert runtimes == {"python3.13"}


def test_a_deprecated_or_unknown_runtime_is_reported() -> None:
    template = {
        "Resources": {
            "Old": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.11"}},
            "New": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.13"}},
            "Odd": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python2.7"}},
        }
    }
    assert unsupported(template, load(), date(2026, 6, 30)) == [
        "Odd: runtime python2.7 has no dates in lambda_runtimes.json",
        "Old: python3.11 deprecated on 2026-06-30",
    ]
    assert "New: python3.13 deprecated on 2029-06-30" in unsupported(
        template, load(), date(2029, 6, 30)
    )


def test_the_dates_say_where_they_come_from() -> None:
    data = load()
    assert "docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html" in data["source"]
    date.fromisoformat(data["retrieved"])
