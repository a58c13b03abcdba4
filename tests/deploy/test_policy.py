"""Each Lambda function's role allows every AWS call its code path makes, and nothing else.

The calls are derived from the code (`infra.aws_calls`), never listed by hand; the
per-function policies are written from them (`infra.policies`) and kept in
`.chalice/policies/`. The only actions not derived from calls are those AWS needs on a
function's behalf (`infra.policies.ON_ITS_BEHALF`), each with its reason.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from infra.aws_calls import API_HANDLER, CallGraph
from infra.policies import (
    CATALOGUE,
    NEEDS_NO_PERMISSION,
    ON_ITS_BEHALF,
    POLICIES,
    Function,
    functions,
    needed_by_function,
    policy_for,
    policy_path,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY = json.loads(CATALOGUE.read_text())
# Read-only operations by name; anything else is a write.
READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGetItem", "Filter")


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


def behalf_of(function: Function, needed: set[str]) -> set[str]:
    return {a for b in ON_ITS_BEHALF if b.applies(function, needed) for a in b.actions}


@pytest.fixture(scope="module")
def derived() -> tuple[dict[str, dict[str, set[str]]], CallGraph]:
    return needed_by_function()


@pytest.fixture(scope="module")
def needed(derived: tuple[dict[str, dict[str, set[str]]], CallGraph]) -> dict[str, set[str]]:
    return {name: set(actions) for name, actions in derived[0].items()}


@pytest.fixture(scope="module")
def lambdas(derived: tuple[dict[str, dict[str, set[str]]], CallGraph]) -> dict[str, Function]:
    return {f.name: f for f in functions(derived[1])}


def committed(function: str) -> dict[str, Any]:
    return json.loads(policy_path(function).read_text())  # type: ignore[no-any-return]


def test_every_function_has_its_own_policy_file(lambdas: dict[str, Function]) -> None:
    # 13 event handlers and the API handler; no role falls back to a shared policy.
    assert len(lambdas) == 15
    assert "iam_policy_file" not in CONFIG
    for name in lambdas:
        assert CONFIG["lambda_functions"][name]["iam_policy_file"] == f"{POLICIES}/{name}.json"
    written = {p.stem for p in (ROOT / ".chalice" / POLICIES).glob("*.json")}
    assert written == set(lambdas)


def test_every_call_a_function_makes_is_allowed_by_its_role(
    needed: dict[str, set[str]],
) -> None:
    missing = {name: not_allowed(committed(name), actions) for name, actions in needed.items()}
    assert {name: m for name, m in missing.items() if m} == {}, "run python -m infra.policies"


def test_no_role_grants_what_its_function_never_uses(
    needed: dict[str, set[str]], lambdas: dict[str, Function]
) -> None:
    unused = {}
    for name, function in lambdas.items():
        granted = {a for s in committed(name)["Statement"] for a in _list(s["Action"])}
        extra = granted - needed[name] - behalf_of(function, needed[name])
        if extra:
            unused[name] = sorted(extra)
    assert unused == {}, "run python -m infra.policies"


def test_the_committed_policies_are_what_the_code_needs(
    needed: dict[str, set[str]], lambdas: dict[str, Function]
) -> None:
    for name, function in lambdas.items():
        policy, missing = policy_for(function, needed[name], POLICY)
        assert missing == set(), f"{name}: add a grant to {CATALOGUE.name}"
        assert policy_path(name).read_text() == render(policy), "run python -m infra.policies"


def test_the_api_handler_reads_and_signs_cursors_only(needed: dict[str, set[str]]) -> None:
    policy = committed(API_HANDLER)
    lambda_logs = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
    actions = {a for s in policy["Statement"] for a in _list(s["Action"])} - lambda_logs
    writes = sorted(a for a in actions if not a.split(":", 1)[1].startswith(READS))
    assert writes == []
    assert "secretsmanager:GetSecretValue" in actions
    [secret] = [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    cursor_secret = "arn:*:secretsmanager:*:*:secret:spawn-fleet-monitor/cursor-secret-*"
    assert secret["Resource"] == cursor_secret


def test_the_api_handler_reads_only_the_workers_log_group() -> None:
    policy = committed(API_HANDLER)
    reads = {"logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"}
    [statement] = [s for s in policy["Statement"] if reads & set(_list(s["Action"]))]
    assert set(_list(statement["Action"])) == reads
    group = "arn:*:logs:*:*:log-group:/aws/spawn/workers"
    assert sorted(_list(statement["Resource"])) == [group, f"{group}:*"]


def test_only_the_code_that_starts_enrichment_may_start_it(needed: dict[str, set[str]]) -> None:
    start = "observabilityadmin:StartTelemetryEnrichment"
    may = {name for name in needed if allowed(committed(name), start)}
    assert may == {name for name, actions in needed.items() if start in actions}
    assert may <= {"setup", "reconcile"}  # the alarm mode's precondition, nowhere else


def test_the_derivation_sees_every_kind_of_call(needed: dict[str, set[str]]) -> None:
    # A plain call, a paginator, a call through `Clients`, and a transaction's items:
    # Interruptions marks the instance and adds to counters with TransactWriteItems,
    # which IAM authorises as UpdateItem on each item (there is no
    # dynamodb:TransactWriteItems action).
    assert "cloudwatch:PutMetricAlarm" in needed["lifecycle"]
    assert "ec2:DescribeInstances" in needed["spot_interruption"]
    assert "secretsmanager:GetSecretValue" in needed[API_HANDLER]
    assert "dynamodb:UpdateItem" in needed["spot_interruption"]
    assert all("dynamodb:TransactWriteItems" not in actions for actions in needed.values())
    # Reached through the console's planned calls, in setup only.
    assert "cloudwatch:PutDashboard" in needed["setup"]
    assert "logs:PutMetricFilter" in needed["setup"]
    assert "cloudwatch:PutMetricAlarm" not in needed[API_HANDLER]


def test_removing_any_needed_action_is_caught(needed: dict[str, set[str]]) -> None:
    for name, actions in needed.items():
        for action in sorted(actions - NEEDS_NO_PERMISSION):
            policy = copy.deepcopy(committed(name))
            for statement in policy["Statement"]:
                statement["Action"] = [a for a in _list(statement["Action"]) if a != action]
            assert not_allowed(policy, actions) == [action], name


def test_the_catalogue_grants_nothing_no_function_uses(
    needed: dict[str, set[str]], lambdas: dict[str, Function]
) -> None:
    granted = {a for s in POLICY["Statement"] for a in _list(s["Action"])}
    used = {
        a
        for name, function in lambdas.items()
        for a in needed[name] | behalf_of(function, needed[name])
    }
    assert sorted(granted - used) == []
