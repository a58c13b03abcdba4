"""Shared fixtures: fake credentials everywhere, moto in-process, sample events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import botocore.loaders
import botocore.retries.bucket
import botocore.session
import pytest
from moto.core import serialize as moto_serialize

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


# One cache of botocore's service models per worker, shared by every boto3 session the
# tests and the code under test create: each new session would otherwise read and parse
# the models again (about a third of a moto-backed test's CPU). botocore already shares
# this read-only data between the clients of one session.
_SERVICE_MODELS: dict[Any, Any] = {}


def _loader_sharing_models(search_path_string: str | None = None) -> Any:
    loader = botocore.loaders.create_loader(search_path_string)
    loader._cache = _SERVICE_MODELS  # type: ignore[attr-defined]
    return loader


botocore.session.create_loader = _loader_sharing_models


# moto serializes each response by asking, for every member of every item, which
# attribute names it may be under (`get_possible_keys`): half of a DynamoDB-heavy test's
# CPU (a chaos replay spent 38 of 73 s there). The answer depends only on the picker's
# alias providers, the object's class, the model shape and the key, so it is computed
# once per combination; the shape is kept with it, so its id is never reused.
_POSSIBLE_KEYS: dict[tuple[Any, ...], tuple[tuple[str, ...], Any]] = {}


def _remembering_possible_keys(original: Any) -> Any:
    def get_possible_keys(self: Any, context: Any) -> Any:
        key = (
            original,
            tuple(self.alias_providers),
            type(context.obj),
            id(context.shape),
            context.key,
        )
        found = _POSSIBLE_KEYS.get(key)
        if found is None:
            found = _POSSIBLE_KEYS[key] = (tuple(original(self, context)), context.shape)
        return found[0]

    return get_possible_keys


for _picker in (moto_serialize.AttributePicker, moto_serialize.XFormedAttributePicker):
    _picker.get_possible_keys = _remembering_possible_keys(  # type: ignore[method-assign]
        _picker.__dict__["get_possible_keys"]
    )


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


# Tests that share a stack stay on one worker under `pytest -n N --dist loadgroup`
# (`make test`): the packaged template (tests/deploy), the session's local stack, and a
# file of tests/e2e that starts its own. Every other test goes to whichever worker is
# free; its module- and session-scoped fixtures are made once per worker that needs them.
PACKAGED = "deploy"
LOCAL_STACKS = "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = ROOT / "tests"
    for item in items:
        parts = item.path.relative_to(tests).parts
        if parts[0] == PACKAGED:
            item.add_marker(pytest.mark.xdist_group(PACKAGED))
        elif parts[0] == LOCAL_STACKS:
            uses_session_stack = "stack" in getattr(item, "fixturenames", ())
            group = "e2e-stack" if uses_session_stack else "/".join(parts)
            item.add_marker(pytest.mark.xdist_group(group))


class RetryWaits:
    """botocore's waits, taken in virtual time: `sleep` is what its endpoint calls before
    a retry, `Condition` what the adaptive mode's token bucket waits on, `clock` its clock.
    A wait returns at once and moves the clock on by its length, so the bucket sees the
    time pass that it asked for; every wait is recorded in `waits`."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.offset = 0.0
        fake = self

        class Condition(threading.Condition):
            def wait(self, timeout: float | None = None) -> bool:
                fake.sleep(timeout or 0.0)
                return True

        class Clock(botocore.retries.bucket.Clock):
            def sleep(self, amount: float) -> None:
                fake.sleep(amount)

            def current_time(self) -> float:
                return time.time() + fake.offset

        self.Condition = Condition
        self.Clock = Clock
        self.Lock = threading.Lock

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.offset += seconds


@pytest.fixture(autouse=True)
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> RetryWaits:
    """botocore's retry backoff and adaptive rate limiting take no time in tests: the
    retries, their count and the limiter's decisions are unchanged, only the waits go."""
    fake = RetryWaits()
    monkeypatch.setattr(botocore.endpoint, "time", fake)
    monkeypatch.setattr(botocore.retries.bucket, "threading", fake)
    monkeypatch.setattr(botocore.retries.bucket, "Clock", fake.Clock)
    return fake
