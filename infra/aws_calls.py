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
cannot hide a call.

Each Lambda function gets the calls its code path makes (`by_function`): the calls made
in the scopes its handler reaches. Reaching is over-approximated, never under: from a
scope, a plain name reaches the function or class it is bound to (in the module, or
imported from it); `module.name` reaches that module's `name`; any other `x.name`,
called or not, reaches every function and method named `name` in the deployed code
(the receiver's type is not inferred, so a method reached through a callback or a
`Protocol` still counts). A class reached brings its body and its dunder methods (all its
methods when it extends a library class, which may call any of them), a
function its nested functions, and every module's top level runs in every function
(app.py imports them all). So a call can be granted to a function that never makes it
(two methods of the same name), but never missed by one that does.
`python -m infra.aws_calls` prints what it finds, per function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED = ("app.py", "chalicelib")
STUBS_PREFIX = "mypy_boto3_"
# Decorators that make a method read as an attribute (`container.lifecycle`).
PROPERTIES = ("property", "cached_property")
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
    scope: str = ""  # "chalicelib/fleet/interruptions.py:Interruptions.on_warning"


@dataclass
class Found:
    calls: set[Call] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)  # "path:line receiver.method"
    transaction_items: set[str] = field(default_factory=set)  # "Update", "Put", ...
    # The same items by the scope that builds them.
    items_by_scope: dict[str, set[str]] = field(default_factory=dict)


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
        qualnames = _qualnames(tree)
        for scope, names in _typed_scopes(tree, client_types):
            scope_key = f"{where}:{qualnames[scope]}"
            for operation, line in _planned_operations(scope):
                services = by_name.get(operation, [])
                if len(services) == 1:
                    found.calls.add(Call(services[0], operation, f"{where}:{line}", scope_key))
                else:
                    found.unresolved.add(f"{where}:{line} planned {operation}")
            for node in _own_nodes(scope):
                if isinstance(node, ast.Dict) and len(node.keys) == 1:
                    key = node.keys[0]
                    if isinstance(key, ast.Constant) and key.value in TRANSACTION_ITEMS:
                        found.transaction_items.add(key.value)
                        found.items_by_scope.setdefault(scope_key, set()).add(key.value)
                if isinstance(node, ast.Call):
                    found.calls.update(
                        replace(call, scope=scope_key)
                        for call in _named_calls(
                            node, names, properties, factories, operations, where
                        )
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
                        Call(
                            service,
                            operations[service][method],
                            f"{where}:{node.lineno}",
                            scope_key,
                        )
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


MODULE_SCOPE = "<module>"
# The Lambda function Chalice makes of every route (its `lambda_functions` key).
API_HANDLER = "api_handler"
# Chalice's decorators that make a Lambda function of the decorated handler.
EVENT_DECORATORS = {
    "on_sqs_message",
    "schedule",
    "on_cw_event",
    "on_sns_message",
    "lambda_function",
    "on_s3_event",
    "on_dynamodb_record",
    "on_ws_message",
}


def _qualnames(tree: ast.Module) -> dict[ast.AST, str]:
    """`Class.method` (or `outer.inner`) of each function and class; the module is
    `<module>`."""
    names: dict[ast.AST, str] = {tree: MODULE_SCOPE}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names[child] = f"{prefix}{child.name}"
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@dataclass
class CallGraph:
    """Which scopes (`path:qualname`) each scope may run (see the module doc)."""

    edges: dict[str, set[str]]
    # Chalice's function name -> its handlers' scopes, and the decorator that made it.
    entries: dict[str, set[str]]
    triggers: dict[str, str] = field(default_factory=dict)

    def reached(self, starts: Iterable[str]) -> set[str]:
        stack = [*starts, *(key for key in self.edges if key.endswith(f":{MODULE_SCOPE}"))]
        seen: set[str] = set()
        while stack:
            key = stack.pop()
            if key not in seen:
                seen.add(key)
                stack.extend(self.edges.get(key, set()) - seen)
        return seen


@dataclass
class _Class:
    key: str
    node: ast.ClassDef
    bases: list[str] = field(default_factory=list)  # project classes' keys
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    attributes: dict[str, set[str]] = field(default_factory=dict)  # self.x -> class keys
    open_ended: bool = False  # a Protocol or ABC: its methods are others' methods


class _Project:
    """The deployed code's modules, top-level names, classes and the types hinted."""

    def __init__(self, trees: dict[Path, ast.Module], root: Path) -> None:
        self.trees = trees
        self.modules = {_module_name(path, root): path for path in trees}
        self.where = {path: str(path.relative_to(root)) for path in trees}
        self.qualnames = {path: _qualnames(tree) for path, tree in trees.items()}
        self.top_level: dict[str, dict[str, str]] = {}  # module -> name -> scope key
        self.by_name: dict[str, set[str]] = {}  # function/method name -> scope keys
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, _Class] = {}
        for path, tree in trees.items():
            for node, qualname in self.qualnames[path].items():
                key = f"{self.where[path]}:{qualname}"
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.by_name.setdefault(node.name, set()).add(key)
                    self.functions[key] = node
                elif isinstance(node, ast.ClassDef):
                    self.classes[key] = _Class(key, node)
            self.top_level[_module_name(path, root)] = {
                node.name: f"{self.where[path]}:{node.name}"
                for node in tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            }
        self.bound: dict[Path, dict[str, str]] = {}  # per module: name -> scope key
        self.aliases: dict[Path, dict[str, str]] = {}  # per module: name -> module
        for path, tree in trees.items():
            self._bind(path, tree, _module_name(path, root))
        for cls in self.classes.values():
            self._describe(cls)

    def _bind(self, path: Path, tree: ast.Module, module: str) -> None:
        bound = dict(self.top_level[module])
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # a relative import
                    base = ".".join([*module.split(".")[: -node.level], node.module])
                for alias in node.names:
                    name = alias.asname or alias.name
                    if f"{base}.{alias.name}" in self.modules:
                        aliases[name] = f"{base}.{alias.name}"
                    elif alias.name in self.top_level.get(base, {}):
                        bound[name] = self.top_level[base][alias.name]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in self.modules and alias.asname:
                        aliases[alias.asname] = alias.name
            elif (  # `runtime = importlib.import_module("chalicelib.core.container")`
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "importlib.import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in self.modules
            ):
                for name in _names_given(tree, node):
                    aliases[name] = node.args[0].value
        self.bound[path], self.aliases[path] = bound, aliases

    def _path_of(self, key: str) -> Path:
        where = key.split(":", 1)[0]
        return next(path for path, w in self.where.items() if w == where)

    def classes_in(self, annotation: ast.expr | None, path: Path) -> set[str]:
        """The project classes an annotation names (`Registry | None` -> Registry)."""
        if annotation is None:
            return set()
        names = {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)}
        for node in ast.walk(annotation):  # a quoted annotation: `"Registry"`
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    quoted = ast.parse(node.value, mode="eval")
                except SyntaxError:
                    continue
                names |= {n.id for n in ast.walk(quoted) if isinstance(n, ast.Name)}
        bound = self.bound[path]
        return {bound[n] for n in names if bound.get(n) in self.classes}

    def _describe(self, cls: _Class) -> None:
        path = self._path_of(cls.key)
        bound = self.bound[path]
        for base in cls.node.bases:
            text = ast.unparse(base).split("[", 1)[0].rsplit(".", 1)[-1]
            if text in ("Protocol", "ABC") or ast.unparse(base).startswith("Protocol"):
                cls.open_ended = True
            elif bound.get(text) in self.classes:
                cls.bases.append(bound[text])
        for item in cls.node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                cls.methods[item.name] = item
                if any(_decorator_name(d) == "abstractmethod" for d in item.decorator_list):
                    cls.open_ended = True
                if any(_decorator_name(d) in PROPERTIES for d in item.decorator_list):
                    # Read as an attribute: its value is what the method returns.
                    cls.attributes[item.name] = self.classes_in(item.returns, path)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                cls.attributes[item.target.id] = self.classes_in(item.annotation, path)
        for method in cls.methods.values():
            parameters = {
                a.arg: self.classes_in(a.annotation, path)
                for a in [*method.args.posonlyargs, *method.args.args, *method.args.kwonlyargs]
            }
            for node in ast.walk(method):
                if isinstance(node, ast.AnnAssign) and ast.unparse(node.target).startswith("self."):
                    cls.attributes[ast.unparse(node.target)[5:]] = self.classes_in(
                        node.annotation, path
                    )
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                    for target in node.targets:
                        text = ast.unparse(target)
                        if text.startswith("self.") and parameters.get(node.value.id):
                            cls.attributes.setdefault(text[5:], set()).update(
                                parameters[node.value.id]
                            )

    def mro(self, key: str) -> list[_Class]:
        order, stack = [], [key]
        while stack:
            cls = self.classes[stack.pop(0)]
            if cls not in order:
                order.append(cls)
                stack.extend(cls.bases)
        return order

    def subclasses(self, key: str) -> list[_Class]:
        return [c for c in self.classes.values() if key in {b.key for b in self.mro(c.key)[1:]}]

    def members(self, types: set[str], name: str) -> set[str] | None:
        """The methods `name` of an instance of `types` may run; None when that cannot be
        told (an open-ended class, or no class defines it)."""
        found: set[str] = set()
        for key in types:
            if any(cls.open_ended for cls in self.mro(key)):
                return None
            for cls in [*self.mro(key), *self.subclasses(key)]:
                if name in cls.methods:
                    found.add(f"{cls.key}.{name}")
        return found or None

    def attribute_types(self, types: set[str], name: str) -> set[str]:
        return {
            t for key in types for cls in self.mro(key) for t in cls.attributes.get(name, set())
        }

    def declares(self, types: set[str], name: str) -> bool:
        """Whether every class of `types` declares attribute `name` (a dataclass field,
        an annotated `self.name`, or `self.name = parameter`)."""
        return all(any(name in cls.attributes for cls in self.mro(key)) for key in types)

    def returns(self, key: str) -> set[str]:
        function = self.functions.get(key)
        if function is None:
            return {key} if key in self.classes else set()
        return self.classes_in(function.returns, self._path_of(key))


def _enclosing_class(qualname: str, project: _Project, where: str) -> str | None:
    owner = f"{where}:{qualname.rsplit('.', 1)[0]}" if "." in qualname else None
    return owner if owner in project.classes else None


def call_graph(paths: Iterable[Path], root: Path = ROOT) -> CallGraph:
    """The over-approximated call graph of `paths` and its Lambda entry points."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in paths}
    project = _Project(trees, root)
    edges: dict[str, set[str]] = {}
    entries: dict[str, set[str]] = {}
    triggers: dict[str, str] = {}
    for path in trees:
        where = project.where[path]
        for node, qualname in project.qualnames[path].items():
            key = f"{where}:{qualname}"
            targets = edges.setdefault(key, set())
            if isinstance(node, ast.ClassDef):
                # A library base class may call any method it lets a subclass override
                # (Powertools' SecretsProvider calls `_get`): all of them come along.
                described = project.classes[key]
                library_base = len(described.bases) < len(node.bases) and not described.open_ended
                targets.update(
                    f"{key}.{item.name}"
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and (item.name.startswith("__") or library_base)
                )
            env: dict[str, set[str]] = {}
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                owner = _enclosing_class(qualname, project, where)
                arguments = node.args
                for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                    env[argument.arg] = project.classes_in(argument.annotation, path)
                if owner and arguments.args:
                    env[arguments.args[0].arg] = {owner}
                made = _lambda_function(node)
                if made:
                    function, triggers[function] = made
                    entries.setdefault(function, set()).add(key)
            # Statements in source order, so a local's type is known where it is used.
            for inner in sorted(_own_nodes(node), key=lambda n: getattr(n, "lineno", 0)):
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    if not isinstance(node, ast.ClassDef | ast.Module):
                        targets.add(f"{key}.{inner.name}")
                elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                    env[inner.target.id] = project.classes_in(inner.annotation, path)
                elif isinstance(inner, ast.Assign) and len(inner.targets) == 1:
                    target = inner.targets[0]
                    if isinstance(target, ast.Name):
                        env[target.id] = _type_of(inner.value, env, project, path)
                elif isinstance(inner, ast.Name) and inner.id in project.bound[path]:
                    targets.add(project.bound[path][inner.id])
                elif isinstance(inner, ast.Attribute):
                    targets.update(_attribute_targets(inner, env, project, path))
    return CallGraph(edges, entries, triggers)


def _type_of(
    expression: ast.expr, env: dict[str, set[str]], project: _Project, path: Path
) -> set[str]:
    """The project classes `expression` evaluates to, when the hints tell (else empty)."""
    if isinstance(expression, ast.Name):
        return env.get(expression.id, set())
    if isinstance(expression, ast.Attribute):
        receiver = _type_of(expression.value, env, project, path)
        return project.attribute_types(receiver, expression.attr) if receiver else set()
    if isinstance(expression, ast.Call):
        return {
            t for key in _callees(expression.func, env, project, path) for t in project.returns(key)
        }
    return set()


def _callees(
    function: ast.expr, env: dict[str, set[str]], project: _Project, path: Path
) -> set[str]:
    if isinstance(function, ast.Name):
        known = project.bound[path].get(function.id)
        return {known} if known and function.id not in env else set()
    if isinstance(function, ast.Attribute):
        receiver = function.value
        if isinstance(receiver, ast.Name) and receiver.id in project.aliases[path]:
            found = project.top_level.get(project.aliases[path][receiver.id], {})
            return {found[function.attr]} if function.attr in found else set()
        types = _type_of(receiver, env, project, path)
        return (project.members(types, function.attr) or set()) if types else set()
    return set()


def _attribute_targets(
    node: ast.Attribute, env: dict[str, set[str]], project: _Project, path: Path
) -> set[str]:
    """What `x.name` may run: `module.name`; a method of `x`'s hinted class (and its
    subclasses'); else every function and method called `name`."""
    receiver = node.value
    if isinstance(receiver, ast.Name) and receiver.id in project.aliases[path]:
        found = project.top_level.get(project.aliases[path][receiver.id], {}).get(node.attr)
        return {found} if found else set()
    types = _type_of(receiver, env, project, path)
    members = project.members(types, node.attr) if types else None
    if members is not None:
        return members
    if types and project.declares(types, node.attr):
        return set()  # a declared attribute (a field), not a method
    return project.by_name.get(node.attr, set())


def _names_given(tree: ast.Module, call: ast.Call) -> Iterator[str]:
    """The names a call's result is assigned to, directly or through a function that
    returns it (`def _runtime(): return importlib.import_module(...)`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.value is call:
            yield from (t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.AnnAssign) and node.value is call:
            yield from [node.target.id] if isinstance(node.target, ast.Name) else []
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(n, ast.Return) and n.value is call for n in ast.walk(node)
        ):
            for other in ast.walk(tree):
                if (
                    isinstance(other, ast.Assign)
                    and isinstance(other.value, ast.Call)
                    and ast.unparse(other.value.func) == node.name
                ):
                    yield from (t.id for t in other.targets if isinstance(t, ast.Name))


def _lambda_function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, str] | None:
    """The Chalice function a handler becomes (`name=` of its event decorator, else the
    handler's own name; the API handler for a route), and the decorator."""
    for decorator in node.decorator_list:
        if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
            continue
        kind = decorator.func.attr
        if kind == "route":
            return API_HANDLER, kind
        if kind in EVENT_DECORATORS:
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value), kind
            return node.name, kind
    return None


def by_function(found: Found, graph: CallGraph) -> dict[str, Found]:
    """The calls of each Lambda function: those made in the scopes its handlers reach."""
    functions = {}
    for function, handlers in sorted(graph.entries.items()):
        reached = graph.reached(handlers)
        items = {
            i for scope, made in found.items_by_scope.items() if scope in reached for i in made
        }
        functions[function] = Found(
            calls={call for call in found.calls if call.scope in reached},
            unresolved=found.unresolved,
            transaction_items=items,
            items_by_scope={k: v for k, v in found.items_by_scope.items() if k in reached},
        )
    return functions


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
    for function, calls in by_function(found, call_graph(deployed_sources())).items():
        print(f"{function}:")
        for action, places in sorted(iam_actions(calls).items()):
            print(f"  {action:40} {', '.join(sorted(places))}")
    for call in sorted(found.unresolved):
        print(f"unresolved receiver: {call}")
    return 1 if found.unresolved else 0


if __name__ == "__main__":
    raise SystemExit(main())
