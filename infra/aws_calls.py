"""The AWS API calls the deployed code makes, read from its source, and their IAM actions.

No hand-kept list: the calls are found by walking the syntax trees of `app.py` and
`chalicelib/`. A call `receiver.method(...)` counts when the receiver is known to be
a boto3 client, which the code's own type hints say (mypy --strict keeps them
complete):

- a parameter, dataclass field or `self.x` annotated with a boto3-stubs client type
  (`DynamoDBClient`, imported from `mypy_boto3_dynamodb`), or `self.x = param` of one;
- an attribute named like a property that returns a client (`Clients.dynamodb`), so
  `clients().dynamodb.put_item(...)` counts;
- a call of a function or method whose return annotation is a client type, so
  `self._cloudwatch(region).describe_alarms(...)` counts.

`get_paginator("scan")` is a `Scan`. Then botocore's service model turns the method
name into the operation (`transact_write_items` -> `TransactWriteItems`), and the
service's signing name into the IAM prefix (CloudWatch signs as `monitoring`; IAM
says `cloudwatch`). IAM authorises a DynamoDB transaction by its items, not by a
`TransactWriteItems` action: each item (`{"Update": ...}`, `{"Put": ...}`, ...)
needs `UpdateItem`, `PutItem`, `DeleteItem` or `ConditionCheckItem`, so the items
built anywhere in the code count for the code's transactions.

A client handed to a helper together with an operation's name counts as that call:
`self._pages(self.logs, "describe_log_groups", ...)` is a `DescribeLogGroups`.

Calls described as data count too: the console setup plans its writes as
`Call(target, "PutMetricAlarm", request, subject)` (`chalicelib.console.plan.Call`) and
makes them later by name. The operation of each such `Call(...)` is its second
argument: a string, or a name assigned strings in the same function (all of them
count). It belongs to the one service the code uses that has an operation of that
name; an unknown or ambiguous one is reported as `unresolved`.

A call on a receiver whose type is unknown but whose method name is an operation of a
service the code uses is reported as `unresolved`, so a client passed around untyped
cannot hide a call. `python -m infra.aws_calls` prints what it finds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED = ("app.py", "chalicelib")
STUBS_PREFIX = "mypy_boto3_"
# The constructor of a planned call: `Call(target, operation, request, subject)`.
PLANNED_CALL = "Call"
# Where a service's IAM prefix differs from the name it signs requests with.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# TransactWriteItems / TransactGetItems item members and the IAM action each needs.
TRANSACTIONS = {"transact_write_items", "transact_get_items"}
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


@dataclass(frozen=True, order=True)
class Call:
    """One AWS operation called somewhere in the code."""

    service: str  # boto3's name: "dynamodb"
    operation: str  # botocore's: "TransactWriteItems"
    where: str  # "chalicelib/fleet/interruptions.py:174"


@dataclass
class Found:
    calls: set[Call] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)  # "path:line receiver.method"
    transaction_items: set[str] = field(default_factory=set)  # "Update", "Put", ...


def deployed_sources(root: Path = ROOT) -> list[Path]:
    paths: list[Path] = []
    for name in DEPLOYED:
        path = root / name
        paths.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return paths


def find_calls(paths: Iterable[Path], root: Path = ROOT) -> Found:
    """Every AWS call in `paths` (see the module doc for what counts)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in paths}
    client_types = {
        alias.asname or alias.name: (node.module or "")[len(STUBS_PREFIX) :].replace("_", "-")
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(STUBS_PREFIX)
        for alias in node.names
        if alias.name.endswith("Client")
    }
    operations = {service: _operations(service) for service in set(client_types.values())}
    properties = _client_properties(trees.values(), client_types)
    factories = _client_factories(trees.values(), client_types)
    own_methods = {
        node.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    found = Found()
    by_name = {
        name: [s for s, ops in operations.items() if name in ops.values()]
        for ops in operations.values()
        for name in ops.values()
    }
    for path, tree in trees.items():
        where = str(path.relative_to(root))
        for scope, names in _typed_scopes(tree, client_types):
            for operation, line in _planned_operations(scope):
                services = by_name.get(operation, [])
                if len(services) == 1:
                    found.calls.add(Call(services[0], operation, f"{where}:{line}"))
                else:
                    found.unresolved.add(f"{where}:{line} planned {operation}")
            for node in _own_nodes(scope):
                if isinstance(node, ast.Dict) and len(node.keys) == 1:
                    key = node.keys[0]
                    if isinstance(key, ast.Constant) and key.value in TRANSACTION_ITEMS:
                        found.transaction_items.add(key.value)
                if isinstance(node, ast.Call):
                    found.calls.update(
                        _named_calls(node, names, properties, factories, operations, where)
                    )
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                method, receiver = node.func.attr, node.func.value
                service = _service_of(receiver, names, properties, factories)
                if service is None:
                    if method not in own_methods and any(method in o for o in operations.values()):
                        found.unresolved.add(f"{where}:{node.lineno} {ast.unparse(node.func)}")
                    continue
                if method == "get_paginator" and node.args:
                    argument = node.args[0]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        method = argument.value
                if method in operations[service]:
                    found.calls.add(
                        Call(service, operations[service][method], f"{where}:{node.lineno}")
                    )
    return found


def _named_calls(
    node: ast.Call,
    names: dict[str, str],
    properties: dict[str, str],
    factories: dict[str, str],
    operations: dict[str, dict[str, str]],
    where: str,
) -> Iterator[Call]:
    """A call handing a client and an operation's snake_case name to a helper."""
    services = {
        service
        for argument in node.args
        if (service := _service_of(argument, names, properties, factories))
    }
    for argument in node.args:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            for service in services:
                if argument.value in operations[service]:
                    yield Call(
                        service, operations[service][argument.value], f"{where}:{node.lineno}"
                    )


def _planned_operations(scope: ast.AST) -> Iterator[tuple[str, int]]:
    """(operation, line) of each `Call(target, operation, ...)` made in `scope`."""
    assigned: dict[str, list[str]] = {}
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign):
            strings = [
                n.value
                for n in ast.walk(node.value)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
            for target in node.targets:
                assigned.setdefault(ast.unparse(target), []).extend(strings)
    for node in _own_nodes(scope):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == PLANNED_CALL
            and len(node.args) >= 2
        ):
            continue
        argument = node.args[1]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            yield argument.value, node.lineno
        else:
            for operation in assigned.get(ast.unparse(argument), [f"<{ast.unparse(argument)}>"]):
                yield operation, node.lineno


def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _client_type(annotation: ast.expr | None, client_types: dict[str, str]) -> str | None:
    """The service of an annotation naming a client type (`DynamoDBClient | None` too)."""
    if annotation is None:
        return None
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id in client_types:
            return client_types[node.id]
        if isinstance(node, ast.Constant) and node.value in client_types:
            return client_types[node.value]
    return None


def _client_properties(trees: Iterable[ast.Module], client_types: dict[str, str]) -> dict[str, str]:
    """Attribute names of properties returning a client (`Clients.dynamodb` -> dynamodb)."""
    return {
        node.name: service
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(_decorator_name(d) in ("property", "cached_property") for d in node.decorator_list)
        and (service := _client_type(node.returns, client_types))
    }


def _client_factories(trees: Iterable[ast.Module], client_types: dict[str, str]) -> dict[str, str]:
    """Names of plain functions and methods returning a client (`_cloudwatch` -> cloudwatch)."""
    return {
        node.name: service
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not any(
            _decorator_name(d) in ("property", "cached_property") for d in node.decorator_list
        )
        and (service := _client_type(node.returns, client_types))
    }


def _decorator_name(decorator: ast.expr) -> str:
    return decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", "")


def _typed_scopes(
    tree: ast.Module, client_types: dict[str, str]
) -> Iterator[tuple[ast.AST, dict[str, str]]]:
    """Each function (and the module) with the names known there to hold a client.

    Names are `x` for parameters and local aliases, `self.x` for attributes of the
    enclosing class (its annotated fields, and `self.x = <client>` in any method).
    """
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    attributes: dict[ast.AST, dict[str, str]] = {}
    for cls in classes:
        known: dict[str, str] = {}
        for statement in cls.body:
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and (service := _client_type(statement.annotation, client_types))
            ):
                known[f"self.{statement.target.id}"] = service
        for method in cls.body:
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                known.update(
                    (name, service)
                    for name, service in _function_names(method, client_types, {}).items()
                    if name.startswith("self.")
                )
        for method in cls.body:
            attributes[method] = known
    yield tree, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, _function_names(node, client_types, attributes.get(node, {}))


def _function_names(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    client_types: dict[str, str],
    known: dict[str, str],
) -> dict[str, str]:
    """`known` names, parameters annotated as clients, and plain assignments of either."""
    arguments = function.args
    names = dict(known)
    names |= {
        argument.arg: service
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        if (service := _client_type(argument.annotation, client_types))
    }
    for node in _own_nodes(function):
        if isinstance(node, ast.AnnAssign) and (
            service := _client_type(node.annotation, client_types)
        ):
            names[ast.unparse(node.target)] = service
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name | ast.Attribute):
            source = names.get(ast.unparse(node.value))
            if source:
                names.update((ast.unparse(target), source) for target in node.targets)
    return names


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `scope`, not descending into nested functions or classes."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def _service_of(
    receiver: ast.expr,
    names: dict[str, str],
    properties: dict[str, str],
    factories: dict[str, str],
) -> str | None:
    text = ast.unparse(receiver)
    if text in names:
        return names[text]
    if isinstance(receiver, ast.Attribute) and receiver.attr in properties:
        return properties[receiver.attr]
    if isinstance(receiver, ast.Call):
        function = receiver.func
        name = function.attr if isinstance(function, ast.Attribute) else ast.unparse(function)
        return factories.get(name)
    return None


def iam_actions(found: Found) -> dict[str, set[str]]:
    """The IAM actions the calls need, each with where it is needed."""
    session = botocore.session.get_session()
    actions: dict[str, set[str]] = {}
    for call in found.calls:
        signing = session.get_service_model(call.service).signing_name
        prefix = IAM_PREFIX.get(signing, signing)
        if call.service == "dynamodb" and xform_name(call.operation) in TRANSACTIONS:
            needed = [TRANSACTION_ITEMS[item] for item in sorted(found.transaction_items)]
        else:
            needed = [call.operation]
        for action in needed:
            actions.setdefault(f"{prefix}:{action}", set()).add(call.where)
    return actions


def main() -> int:
    found = find_calls(deployed_sources())
    for action, places in sorted(iam_actions(found).items()):
        print(f"{action:40} {', '.join(sorted(places))}")
    for call in sorted(found.unresolved):
        print(f"unresolved receiver: {call}")
    return 1 if found.unresolved else 0


if __name__ == "__main__":
    raise SystemExit(main())
