"""Pure checks and fixes over CloudFormation templates (plain dicts, no AWS).

- `dangling_references` walks every `Ref`, `Fn::GetAtt`, `Fn::Sub` variable,
  `Fn::If` condition and `DependsOn` and names those that point at nothing: no
  resource, parameter, condition or pseudo-parameter of that name. CloudFormation
  rejects such a template before creating anything.
- `fix_log_group_names` works around aws/chalice#2079: with `log_retention_in_days`,
  Chalice names the API handler's log group `/aws/lambda/${ApiHandler}` while the
  function is `APIHandler`. It rewrites a log group's `${X}` only while `X` is
  dangling and exactly one function matches it case-insensitively, so once Chalice
  is fixed it does nothing.
- `in_dependency_order` sorts resources so each comes after what it references.
  CloudFormation ignores the order; moto's change sets create in template order.

>>> template = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function"},
...     "Logs": {"Type": "AWS::Logs::LogGroup",
...              "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${FN}"}}}}}
>>> [str(d) for d in dangling_references(template)]
['Resources.Logs.Properties.LogGroupName: Fn::Sub ${FN} names nothing']
>>> fix_log_group_names(template)
['Logs: /aws/lambda/${FN} -> /aws/lambda/${Fn}']
>>> dangling_references(template)
[]
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
# `${Name}` or `${Name.Attribute}`; `${!Literal}` is an escaped literal, not a variable.
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")
_LAMBDA_LOG_GROUP = re.compile(r"/aws/lambda/\$\{([A-Za-z0-9]+)\}")
_FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})


@dataclass(frozen=True)
class Reference:
    """One use of a name inside the template."""

    where: str
    kind: str  # Ref, Fn::GetAtt, Fn::Sub, Fn::If, DependsOn
    name: str
    needs_resource: bool  # GetAtt, `${X.Attr}` and DependsOn can only name resources

    def __str__(self) -> str:
        shown = f"${{{self.name}}}" if self.kind == "Fn::Sub" else self.name
        return f"{self.where}: {self.kind} {shown} names nothing"


def references(node: Any, where: str = "") -> Iterator[Reference]:
    """Every name the intrinsics inside `node` refer to (Fn::Sub's own variables excluded)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from references(item, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        [(key, value)] = node.items()
        if key == "Ref" and isinstance(value, str):
            yield Reference(where, key, value, needs_resource=False)
            return
        if key == "Fn::GetAtt":
            name = value.split(".", 1)[0] if isinstance(value, str) else value[0]
            yield Reference(where, key, name, needs_resource=True)
            yield from references(value[1:] if isinstance(value, list) else [], where)
            return
        if key == "Fn::Sub":
            yield from _sub_references(value, where)
            return
        if key == "Fn::If" and isinstance(value, list) and value:
            yield Reference(where, key, value[0], needs_resource=False)
            yield from references(value[1:], where)
            return
    for key, value in node.items():
        yield from references(value, f"{where}.{key}" if where else key)


def _sub_references(value: Any, where: str) -> Iterator[Reference]:
    text, local = (value[0], value[1]) if isinstance(value, list) else (value, {})
    yield from references(local, where)
    for variable in _SUB_VARIABLE.findall(text):
        name, _, attribute = variable.partition(".")
        if name not in local:
            yield Reference(where, "Fn::Sub", variable, needs_resource=bool(attribute))


def all_references(template: dict[str, Any]) -> Iterator[Reference]:
    """References in resources (properties, conditions, DependsOn) and outputs."""
    for logical, resource in template.get("Resources", {}).items():
        where = f"Resources.{logical}"
        for key, value in resource.items():
            if key == "DependsOn":
                for name in [value] if isinstance(value, str) else value:
                    yield Reference(f"{where}.DependsOn", "DependsOn", name, needs_resource=True)
            elif key == "Condition":
                yield Reference(f"{where}.Condition", "Condition", value, needs_resource=False)
            else:
                yield from references(value, f"{where}.{key}")
    yield from references(template.get("Outputs", {}), "Outputs")
    yield from references(template.get("Conditions", {}), "Conditions")


def dangling_references(template: dict[str, Any]) -> list[Reference]:
    """The references that name no resource, parameter, condition or pseudo-parameter."""
    resources = set(template.get("Resources", {}))
    conditions = set(template.get("Conditions", {}))
    values = resources | set(template.get("Parameters", {})) | PSEUDO_PARAMETERS
    dangling = []
    for reference in all_references(template):
        if reference.kind in ("Fn::If", "Condition"):
            known = reference.name in conditions
        elif reference.needs_resource:
            known = reference.name.split(".", 1)[0] in resources
        else:
            known = reference.name in values
        if not known:
            dangling.append(reference)
    return dangling


def fix_log_group_names(template: dict[str, Any]) -> list[str]:
    """Point Lambda log groups at their function when Chalice misnamed it (chalice#2079).

    Changes `template` in place; returns one line per change (none once Chalice
    names the function correctly).
    """
    resources = template.get("Resources", {})
    functions = {
        logical.lower(): logical
        for logical, resource in resources.items()
        if resource.get("Type") in _FUNCTION_TYPES
    }
    fixes = []
    for logical, resource in resources.items():
        if resource.get("Type") != "AWS::Logs::LogGroup":
            continue
        name = resource.get("Properties", {}).get("LogGroupName")
        match = _LAMBDA_LOG_GROUP.fullmatch(name.get("Fn::Sub", "")) if _is_sub(name) else None
        if not match or match[1] in resources or match[1].lower() not in functions:
            continue
        fixed = f"/aws/lambda/${{{functions[match[1].lower()]}}}"
        fixes.append(f"{logical}: {name['Fn::Sub']} -> {fixed}")
        name["Fn::Sub"] = fixed
    return fixes


def _is_sub(value: Any) -> bool:
    return (
        isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str)
    )


def resource_dependencies(template: dict[str, Any]) -> dict[str, set[str]]:
    """For each resource, the other resources it references or depends on."""
    resources = template.get("Resources", {})
    graph: dict[str, set[str]] = {logical: set() for logical in resources}
    for reference in all_references({"Resources": resources}):
        logical = reference.where.split(".", 2)[1]
        name = reference.name.split(".", 1)[0]
        if name in resources and name != logical:
            graph[logical].add(name)
    return graph


def in_dependency_order(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of `template` whose resources come after everything they reference.

    Raises `graphlib.CycleError` on a circular dependency (CloudFormation rejects
    those too).
    """
    order = graphlib.TopologicalSorter(resource_dependencies(template)).static_order()
    resources = template["Resources"]
    return {**template, "Resources": {logical: resources[logical] for logical in order}}
