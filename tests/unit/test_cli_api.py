"""How the CLI finds the API and signs for it (no network: endpoints given directly)."""

from __future__ import annotations

import re
import subprocess
import sys

import boto3
import pytest

from spawn_monitor.api import Api, ApiError, Target, is_loopback, locate, region_of

DEPLOYED = "https://abc123.execute-api.eu-west-1.amazonaws.com/api"


def test_loopback_endpoints_are_not_signed_by_default_deployed_ones_are() -> None:
    session = boto3.Session(region_name="us-east-1")
    local = locate(session, "http://127.0.0.1:8000/", "unused")
    assert local == Target("http://127.0.0.1:8000", None, False)
    deployed = locate(session, DEPLOYED, "unused")
    assert deployed == Target(DEPLOYED, "eu-west-1", True)  # the region from the host name
    assert locate(session, "http://localhost:8000", "unused", sign="always").sign
    assert not locate(session, DEPLOYED, "unused", sign="never").sign
    assert locate(session, DEPLOYED, "unused", region="us-west-2").region == "us-west-2"


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAWN_MONITOR_ENDPOINT", "http://127.0.0.1:9999")
    session = boto3.Session(region_name="us-east-1")
    assert locate(session, None, "unused").endpoint == "http://127.0.0.1:9999"
    assert locate(session, "http://[::1]:8000", "unused").endpoint == "http://[::1]:8000"


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8000", "ftp://x", "http://"])
def test_a_malformed_endpoint_is_one_clear_error(endpoint: str) -> None:
    with pytest.raises(ApiError, match="not an http"):
        locate(boto3.Session(region_name="us-east-1"), endpoint, "unused")


def test_host_names() -> None:
    assert is_loopback("http://localhost:1")
    assert is_loopback("http://127.0.0.2:1")
    assert not is_loopback("http://10.0.0.1:1")
    assert not is_loopback(DEPLOYED)
    assert region_of(DEPLOYED) == "eu-west-1"
    assert region_of("https://example.com") is None


def test_signed_requests_carry_a_sigv4_signature_for_execute_api() -> None:
    api = Api(Target(DEPLOYED, "eu-west-1", True), boto3.Session(region_name="eu-west-1"))
    headers = api.headers(f"{DEPLOYED}/fleet")
    assert re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=testing/\d{8}/eu-west-1/execute-api/aws4_request, "
        r"SignedHeaders=[a-z;-]*host[a-z;-]*, Signature=[0-9a-f]{64}",
        headers["Authorization"],
    )
    assert headers["X-Amz-Security-Token"] == "testing"
    other = api.headers(f"{DEPLOYED}/alerts")
    assert other["Authorization"] != headers["Authorization"]
    unsigned = Api(Target("http://127.0.0.1:8000", None, False)).headers("http://127.0.0.1:8000/")
    assert "Authorization" not in unsigned


def test_signing_without_credentials_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    api = Api(Target(DEPLOYED, "eu-west-1", True), boto3.Session(region_name="eu-west-1"))
    with pytest.raises(ApiError, match="no AWS credentials"):
        api.headers(f"{DEPLOYED}/fleet")


def test_the_cli_needs_neither_chalice_nor_moto() -> None:
    script = (
        "import sys\n"
        "import spawn_monitor.cli, spawn_monitor.doctor, spawn_monitor.ui, spawn_monitor.watch\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'chalice', 'chalicelib', 'moto'}))\n"
    )
    found = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
