"""`python -m tools.console`: the console's two operator commands.

    agent-config          print the CloudWatch agent configuration for workers (JSON),
                          built from the same description the setup applies
                          (`make agent-config`)
    setup --stack NAME    run the deployed `setup` function once and print its result;
                          the deploy script calls `invoke_setup` after a stack update,
                          so the console exists as soon as the stack does

Settings come from the environment like the functions' (`.chalice/config.json` values
apply when deployed; here, the defaults unless set).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3

from chalicelib.console.logs import agent_config
from chalicelib.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Chalice names a function's CloudFormation resource after it: `setup` → `Setup`.
SETUP_LOGICAL_ID = "Setup"


def invoke_setup(cloudformation: Any, lambda_client: Any, stack_name: str) -> dict[str, Any]:
    """Run the stack's `setup` function once, synchronously (what the deploy script
    calls after the stack update); returns its report. Raises RuntimeError if the
    function failed.

    Example:
        >>> aws = boto3.Session(region_name="eu-west-1")
        >>> invoke_setup(aws.client("cloudformation"), aws.client("lambda"), "spawn-fleet-monitor")
    """
    resource = cloudformation.describe_stack_resource(
        StackName=stack_name, LogicalResourceId=SETUP_LOGICAL_ID
    )
    # The handler is a scheduled one: it receives EventBridge's scheduled-event shape.
    event = (ROOT / "events" / "schedule-tick.json").read_text()
    response = lambda_client.invoke(
        FunctionName=resource["StackResourceDetail"]["PhysicalResourceId"],
        InvocationType="RequestResponse",
        Payload=event.encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise RuntimeError(f"console setup failed: {payload}")
    return payload if isinstance(payload, dict) else {"result": payload}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.console")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("agent-config", help="print the workers' CloudWatch agent config")
    setup = commands.add_parser("setup", help="run the deployed console setup once")
    setup.add_argument("--stack", default="spawn-fleet-monitor", help="CloudFormation stack")
    setup.add_argument("--region", help="the stack's region (default: the environment's)")
    args = parser.parse_args(argv)
    if args.command == "agent-config":
        print(json.dumps(agent_config(Settings.from_env()), indent=2))
        return 0
    session = boto3.Session(region_name=args.region)
    try:
        result = invoke_setup(
            session.client("cloudformation"), session.client("lambda"), args.stack
        )
    except Exception as exc:  # one line, never a traceback
        print(f"console setup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
