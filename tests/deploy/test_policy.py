"""`.chalice/policy.json` allows every AWS call the code makes, and nothing else.

The calls are derived from the code (`infra.aws_calls`), never listed by hand. The
only actions listed here are those AWS needs on the code's behalf, each with the
template feature that needs it.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from infra.aws_calls import deployed_sources, find_calls, iam_actions

ROOT = Path(__file__).resolve().parents[2]
POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
# Calls IAM does not authorise ("no permissions are required to perform this operation").
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# Actions AWS performs under the functions' role, not the code: why each is needed.
ON_THE_CODES_BEHALF = {
    "logs:CreateLogGroup": "Lambda writes the functions' logs",
    "logs:CreateLogStream": "Lambda writes the functions' logs",
    "logs:PutLogEvents": "Lambda writes the functions' logs",
    "sqs:ReceiveMessage": "Lambda's poller for the lifecycle queue (SQS event source)",
    "sqs:DeleteMessage": "Lambda's poller for the lifecycle queue (SQS event source)",
    "sqs:GetQueueAttributes": "Lambda's poller for the lifecycle queue (SQS event source)",
    "sqs:ChangeMessageVisibility": "Lambda's poller for the lifecycle queue (SQS event source)",
    "sqs:SendMessage": "failure destinations: spawn-failed-events",
    "dynamodb:DescribeStream": "Lambda's poller for the progress stream (ProgressStreamMapping)",
    "dynamodb:GetRecords": "Lambda's poller for the progress stream",
    "dynamodb:GetShardIterator": "Lambda's poller for the progress stream",
    "dynamodb:ListStreams": "Lambda's poller for the progress stream",
    "cloudwatch:TagResource": "PutMetricAlarm with Tags needs it (alarms are tagged)",
    "iam:CreateServiceLinkedRole": "ENABLE_RECOVER_ACTION: EC2 recover actions on alarms",
}


def allowed(policy: dict[str, Any], action: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(statement["Action"]))
        for statement in policy["Statement"]
    )


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def not_allowed(policy: dict[str, Any], needed: set[str]) -> list[str]:
    return sorted(a for a in needed if a not in NEEDS_NO_PERMISSION and not allowed(policy, a))


@pytest.fixture(scope="module")
def needed() -> dict[str, set[str]]:
    found = find_calls(deployed_sources())
    assert found.unresolved == set(), "annotate these receivers with their boto3 client type"
    return iam_actions(found)


def test_every_call_in_the_code_is_allowed(needed: dict[str, set[str]]) -> None:
    assert not_allowed(POLICY, set(needed)) == []


def test_the_derivation_sees_every_kind_of_call(needed: dict[str, set[str]]) -> None:
    # A plain call, a paginator, a call through `Clients`, and a transaction's items:
    # Interruptions marks the instance and adds to counters with TransactWriteItems,
    # which IAM authorises as UpdateItem on each item (there is no
    # dynamodb:TransactWriteItems action).
    assert "chalicelib/alarms/per_instance.py" in " ".join(needed["cloudwatch:PutMetricAlarm"])
    assert "chalicelib/fleet/registry.py" in " ".join(needed["ec2:DescribeInstances"])
    assert "chalicelib/core/clients.py" in " ".join(needed["secretsmanager:GetSecretValue"])
    assert "chalicelib/fleet/interruptions.py" in " ".join(needed["dynamodb:UpdateItem"])
    assert "dynamodb:TransactWriteItems" not in needed


def test_removing_any_needed_action_is_caught(needed: dict[str, set[str]]) -> None:
    for action in sorted(set(needed) - NEEDS_NO_PERMISSION):
        policy = copy.deepcopy(POLICY)
        for statement in policy["Statement"]:
            statement["Action"] = [a for a in _list(statement["Action"]) if a != action]
        assert not_allowed(policy, set(needed)) == [action]


def test_the_policy_grants_nothing_unused(needed: dict[str, set[str]]) -> None:
    granted = {a for s in POLICY["Statement"] for a in _list(s["Action"])}
    assert sorted(granted - set(needed) - set(ON_THE_CODES_BEHALF)) == []
