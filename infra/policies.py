"""One least-privilege IAM policy per Lambda function, derived from the code.

`.chalice/policy.json` is the catalogue: every grant any function may get, each action
with the narrowest resource IAM allows for it. A function's policy
(`.chalice/policies/<function>.json`, named in `.chalice/config.json`'s
`lambda_functions`) keeps, of each catalogue statement, only the actions that function
needs:

- the calls its code path makes (`infra.aws_calls.by_function`), and
- what AWS does under the function's role on its behalf (`ON_ITS_BEHALF`): Lambda
  writing its logs, Lambda's pollers reading its queue or stream, its failure
  destination, the tags and service-linked role its alarm writes imply.

Statements left with no action are dropped. `python -m infra.policies` rewrites the
files; `tests/deploy/test_policy.py` fails when a file differs from what the code needs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.aws_calls import (
    CallGraph,
    by_function,
    call_graph,
    deployed_sources,
    find_calls,
    iam_actions,
)

ROOT = Path(__file__).resolve().parent.parent
CHALICE = ROOT / ".chalice"
CATALOGUE = CHALICE / "policy.json"
CONFIG = CHALICE / "config.json"
POLICIES = "policies"  # under .chalice, as Chalice resolves `iam_policy_file`
MERGE_TEMPLATE = ROOT / "infra" / "resources.json"
# Calls IAM does not authorise ("no permissions are required to perform this operation").
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# The catalogue statement that holds Lambda's own log writes: code-derived actions
# (console setup's CreateLogGroup of worker log groups) never go there.
LAMBDA_LOGS_SID = "Logs"


@dataclass(frozen=True)
class Function:
    """What decides a function's grants besides its code."""

    name: str
    trigger: str  # Chalice's decorator: schedule, on_sqs_message, route, ...
    stream: bool  # a DynamoDB stream event source (infra/resources.json)
    failure_destination: bool  # an on-failure destination (infra/resources.json)


@dataclass(frozen=True)
class Behalf:
    """Actions AWS performs under a function's role, in one catalogue statement."""

    sid: str
    actions: frozenset[str]
    why: str
    applies: Callable[[Function, set[str]], bool]  # (function, its code's actions)


ON_ITS_BEHALF = (
    Behalf(
        LAMBDA_LOGS_SID,
        frozenset({"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}),
        "Lambda writes the function's logs",
        lambda f, needed: True,
    ),
    Behalf(
        "ConsumeLifecycleQueue",
        frozenset(
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            }
        ),
        "Lambda's poller for the lifecycle queue (SQS event source)",
        lambda f, needed: f.trigger == "on_sqs_message",
    ),
    Behalf(
        "ReadProgressStream",
        frozenset(
            {
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            }
        ),
        "Lambda's poller for the progress stream (ProgressStreamMapping)",
        lambda f, needed: f.stream,
    ),
    Behalf(
        "KeepEventsThatFailed",
        frozenset({"sqs:SendMessage"}),
        "the function's on-failure destination, spawn-failed-events",
        lambda f, needed: f.failure_destination,
    ),
    Behalf(
        "ManageSpawnAlarmsOnly",
        frozenset({"cloudwatch:TagResource"}),
        "PutMetricAlarm with Tags needs it (alarms are tagged)",
        lambda f, needed: "cloudwatch:PutMetricAlarm" in needed,
    ),
    Behalf(
        "RecoverActionOnSystemAlarmsIfEnabled",
        frozenset({"iam:CreateServiceLinkedRole"}),
        "ENABLE_RECOVER_ACTION: EC2 recover actions on the alarms it writes",
        lambda f, needed: "cloudwatch:PutMetricAlarm" in needed,
    ),
)


def logical_id(function: str) -> str:
    """The template's logical id Chalice gives a function: `spot_interruption` ->
    `SpotInterruption`."""
    return "".join(part[:1].upper() + part[1:] for part in function.split("_"))


def functions(graph: CallGraph, merge_template: Path = MERGE_TEMPLATE) -> list[Function]:
    resources = json.loads(merge_template.read_text())["Resources"]
    found = []
    for name in sorted(graph.entries):
        properties = resources.get(logical_id(name), {}).get("Properties", {})
        events = properties.get("Events", {}).values()
        found.append(
            Function(
                name,
                graph.triggers[name],
                stream=any(event.get("Type") == "DynamoDB" for event in events),
                failure_destination="OnFailure"
                in properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}),
            )
        )
    return found


def needed_by_function(root: Path = ROOT) -> tuple[dict[str, dict[str, set[str]]], CallGraph]:
    """Each function's code-derived actions, with where each is needed."""
    sources = deployed_sources(root)
    found = find_calls(sources, root)
    assert not found.unresolved, f"annotate these receivers: {sorted(found.unresolved)}"
    graph = call_graph(sources, root)
    return {name: iam_actions(calls) for name, calls in by_function(found, graph).items()}, graph


def policy_for(
    function: Function, needed: set[str], catalogue: dict[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """The function's policy, and the needed actions the catalogue has no grant for."""
    needed = needed - NEEDS_NO_PERMISSION
    behalf = {b.sid: b.actions for b in ON_ITS_BEHALF if b.applies(function, needed)}
    statements = []
    granted: set[str] = set()
    for statement in catalogue["Statement"]:
        sid = statement["Sid"]
        code = set() if sid == LAMBDA_LOGS_SID else needed
        keep = [a for a in _list(statement["Action"]) if a in code or a in behalf.get(sid, ())]
        if keep:
            statements.append({**copy.deepcopy(statement), "Action": keep})
            granted.update(keep)
    return {"Version": catalogue["Version"], "Statement": statements}, needed - granted


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def policy_path(function: str) -> Path:
    return CHALICE / POLICIES / f"{function}.json"


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.policies", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say which files differ")
    args = parser.parse_args(argv)
    needed, graph = needed_by_function()
    catalogue = json.loads(CATALOGUE.read_text())
    config = json.loads(CONFIG.read_text())
    stale = []
    for function in functions(graph):
        policy, missing = policy_for(function, set(needed[function.name]), catalogue)
        if missing:
            print(f"{function.name}: no grant in {CATALOGUE.name} for {sorted(missing)}")
            return 1
        path = policy_path(function.name)
        text = render(policy)
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(exist_ok=True)
                path.write_text(text)
        entry = config["lambda_functions"].setdefault(function.name, {})
        if entry.get("iam_policy_file") != f"{POLICIES}/{path.name}":
            stale += [] if CONFIG in stale else [CONFIG]
            entry["iam_policy_file"] = f"{POLICIES}/{path.name}"
        actions = sorted({a for s in policy["Statement"] for a in s["Action"]})
        print(f"{function.name:24} {len(actions):3} actions")
    if not args.check and CONFIG in stale:
        CONFIG.write_text(json.dumps(config, indent=2) + "\n")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
