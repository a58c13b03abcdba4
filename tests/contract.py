"""The API contract in tests: `chalicelib.contract.openapi.document()`, used on both sides.

Backend tests validate real responses with `check_response`; the CLI's tests feed the
CLI bodies drawn by `bodies(schema)` (every one valid by construction) and validate its
`--json` output with `check`. The strategy covers the JSON Schema the document uses
(hypothesis-jsonschema 0.23 does not run on the pinned hypothesis).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from chalicelib.contract.openapi import document

_TEMPLATES = sorted(document()["paths"], key=len, reverse=True)


def schema(name: str) -> dict[str, Any]:
    """A component schema by name, e.g. `schema("ArrayPage")`."""
    return {"$ref": f"#/components/schemas/{name}"}


def response_schema(template: str, status: int) -> dict[str, Any]:
    responses = document()["paths"][template]["get"]["responses"]
    assert str(status) in responses, f"{template} does not document status {status}"
    return responses[str(status)]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


@cache
def _validator(against: str) -> Draft202012Validator:
    return Draft202012Validator({**json.loads(against), "components": document()["components"]})


def errors(body: Any, against: dict[str, Any]) -> list[str]:
    """Why `body` does not validate against a schema of the document (empty if it does)."""
    validator = _validator(json.dumps(against, sort_keys=True))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def check(body: Any, against: dict[str, Any]) -> None:
    problems = errors(body, against)
    assert not problems, problems


def template_of(path: str) -> str:
    """The documented path template a concrete path (without query) matches."""
    bare = path.split("?", 1)[0]
    for template in _TEMPLATES:
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, bare):
            return template
    raise AssertionError(f"{bare} matches no documented path")


def check_response(path: str, status: int, body: Any) -> None:
    """Assert that a real response is documented and matches its schema."""
    check(body, response_schema(template_of(path), status))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = document()["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
) | st.sampled_from(["[bold]", "[/]", "[red]x[/red]", "<b>&amp;", "ß" * 40])


def bodies(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Instances of a schema of the document (the subset it uses), to feed the CLI."""
    node = _resolve(node)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node or "oneOf" in node:
        return st.one_of([bodies(n) for n in node.get("anyOf", node.get("oneOf"))])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        if not properties:
            extra = node.get("additionalProperties")
            values = bodies(extra) if isinstance(extra, dict) else bodies({})
            return st.dictionaries(_TEXT, values, max_size=4)
        fixed = {k: bodies(v) for k, v in properties.items() if k in required}
        optional = {k: bodies(v) for k, v in properties.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        return st.lists(bodies(node["items"]), max_size=node.get("maxItems", 4))
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True)
        return _TEXT.filter(lambda s: len(s) >= node.get("minLength", 0))
    if kind == "integer":
        return st.integers(node.get("minimum", -(10**6)), node.get("maximum", 10**9))
    if kind == "number":
        return st.floats(node.get("minimum", -1e6), node.get("maximum", 1e9), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    # An unconstrained schema (e.g. an invalid row's task_index as found).
    return st.none() | st.integers() | _TEXT
