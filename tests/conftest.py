"""Shared fixtures: fake credentials everywhere, moto in-process, sample events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from `events/` (the AWS shapes the functions consume)."""
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach a real AWS account: fake keys, a fixed region, no profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def session(fake_aws_credentials: None) -> Iterator[boto3.Session]:
    """A boto3 session whose every call goes to moto in-process."""
    from moto import mock_aws

    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the browser test could not run (no Chromium on this machine)."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if "BROWSER TEST SKIPPED" in reason:
            terminalreporter.write_sep("!", "BROWSER TEST SKIPPED", red=True, bold=True)
            terminalreporter.write_line(f"  {reason}", red=True, bold=True)
            terminalreporter.write_line(
                "  The web view was NOT tested in a browser. Install Chromium: "
                "apt-get install chromium chromium-driver",
                red=True,
                bold=True,
            )
            return


# Folders whose tests share one costly session fixture (the local stack; a packaged
# template): under pytest-xdist each runs on one worker, so it is made once.
SHARED_SESSION_FIXTURES = ("e2e", "deploy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for `pytest -n N --dist loadgroup` (`make test`): a shared-fixture
    folder is one group, any other file its own (module-scoped fixtures stay shared)."""
    tests = ROOT / "tests"
    for item in items:
        parts = item.path.relative_to(tests).parts
        group = parts[0] if parts[0] in SHARED_SESSION_FIXTURES else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))
