"""`python -m tools.console`: the agent config as users print it, and the deploy hook."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from chalicelib.console.logs import log_groups
from chalicelib.core.settings import Settings
from tools.console import invoke_setup

ROOT = Path(__file__).resolve().parents[2]


def test_make_agent_config_prints_the_groups_setup_creates() -> None:
    env = {**os.environ, "ERROR_LOG_RETENTION_DAYS": "90"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.console", "agent-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entries = json.loads(result.stdout)["logs"]["logs_collected"]["files"]["collect_list"]
    settings = Settings(error_log_retention_days=90)
    assert {(e["log_group_name"], e["retention_in_days"]) for e in entries} == {
        (g.name, g.retention_days) for g in log_groups(settings)
    }


def _payload(document: object) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def stubbed() -> tuple[object, object, Stubber, Stubber]:
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
    lambda_client = boto3.client("lambda", region_name="eu-west-1")
    cfn, lam = Stubber(cloudformation), Stubber(lambda_client)
    cfn.add_response(
        "describe_stack_resource",
        {
            "StackResourceDetail": {
                "LogicalResourceId": "Setup",
                "PhysicalResourceId": "spawn-fleet-monitor-prod-setup",
                "ResourceType": "AWS::Serverless::Function",
                "LastUpdatedTimestamp": "2026-01-27T10:00:00Z",
                "ResourceStatus": "UPDATE_COMPLETE",
            }
        },
        {"StackName": "spawn-fleet-monitor-prod", "LogicalResourceId": "Setup"},
    )
    return cloudformation, lambda_client, cfn, lam


def test_the_deploy_hook_runs_the_stacks_setup_function_once() -> None:
    cloudformation, lambda_client, cfn, lam = stubbed()
    event = (ROOT / "events" / "schedule-tick.json").read_text()
    lam.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload({"writes": {"PutDashboard": 1}})},
        {
            "FunctionName": "spawn-fleet-monitor-prod-setup",
            "InvocationType": "RequestResponse",
            "Payload": event.encode(),
        },
    )
    with cfn, lam:
        result = invoke_setup(cloudformation, lambda_client, "spawn-fleet-monitor-prod")
    assert result == {"writes": {"PutDashboard": 1}}


def test_a_failed_setup_fails_the_deploy_hook() -> None:
    cloudformation, lambda_client, cfn, lam = stubbed()
    lam.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": _payload({"errorMessage": "PutDashboard spawn-fleet: AccessDenied"}),
        },
    )
    with cfn, lam, pytest.raises(RuntimeError, match="AccessDenied"):
        invoke_setup(cloudformation, lambda_client, "spawn-fleet-monitor-prod")
