"""The generated reference sections, as Markdown, from what `sources` reads out of the code.

A page asks for a section with a marker on a line of its own, e.g.
`<!-- reference: settings -->`; `hooks.py` replaces it at build time. Each renderer
fails the build rather than print something the code does not say.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tools.docs import sources
from tools.docs.meanings import SETTING_MEANINGS

# The width argparse wraps help at, so the pages do not depend on the terminal.
HELP_COLUMNS = "100"


class ReferenceError(ValueError):
    """The code and what the docs hold about it disagree; the message says how."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: object) -> str:
    return f"`{value}`"


def _default(value: object) -> str:
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, float) and value.is_integer():
        return _code(int(value))
    if isinstance(value, tuple):
        return _code(",".join(value)) if value else "(none)"
    return _code(value)


def settings_table() -> str:
    """Every setting: its variable and default from the settings object, its meaning."""
    settings = sources.settings()
    variables = {s.variable for s in settings}
    missing = sorted(variables - SETTING_MEANINGS.keys())
    stale = sorted(SETTING_MEANINGS.keys() - variables)
    if missing or stale:
        raise ReferenceError(
            "tools/docs/meanings.py and the settings object disagree: "
            f"no meaning for {missing}, meanings of no setting {stale}"
        )
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in settings:
        lines.append(
            f"| `{s.variable}` | {_cell(_default(s.default))} "
            f"| {_cell(SETTING_MEANINGS[s.variable])} |"
        )
    return "\n".join(lines)


def metrics_table() -> str:
    """Every metric series of the console's catalog, grouped by namespace."""
    out: list[str] = []
    namespaces: dict[str, list[Any]] = {}
    for metric in sources.metrics():
        namespaces.setdefault(metric.namespace, []).append(metric)
    for namespace, metrics in namespaces.items():
        out += [f"### {namespace}", ""]
        out += ["| metric | dimensions | unit | published by | meaning |", "|---|---|---|---|---|"]
        for m in metrics:
            dims = ", ".join(f"`{d}`" for d in m.dimensions) or "none (fleet-wide)"
            out.append(
                f"| `{_cell(m.name)}` | {dims} | {m.unit} | {m.publisher} | {_cell(m.meaning)} |"
            )
        out.append("")
    return "\n".join(out)


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _type(schema: dict[str, Any]) -> str:
    """A schema in a few words, with links to the named schemas it refers to."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = f"array of {_type(schema.get('items', {}))}"
        if "maxItems" in schema:
            text += f" (at most {schema['maxItems']})"
        return text
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, dict):
            return f"object of {_type(extra)}"
    words = [str(kind)]
    if "enum" in schema:
        words.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "pattern" in schema:
        words.append(f"matching `{schema['pattern']}`")
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength") if k in schema]
    if bounds:
        words.append("(" + ", ".join(bounds) + ")")
    return " ".join(words)


def _parameters(document: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    params = []
    for entry in operation.get("parameters", []):
        if "$ref" in entry:
            entry = document["components"]["parameters"][entry["$ref"].rsplit("/", 1)[-1]]
        params.append(entry)
    if not params:
        return []
    lines = ["| parameter | in | required | type | meaning |", "|---|---|---|---|---|"]
    for p in params:
        required = "yes" if p.get("required") else "no"
        lines.append(
            f"| `{p['name']}` | {p['in']} | {required} | {_cell(_type(p['schema']))} "
            f"| {_cell(p.get('description', ''))} |"
        )
    return [*lines, ""]


def _responses(operation: dict[str, Any]) -> list[str]:
    lines = ["| status | meaning | body |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        lines.append(f"| {status} | {_cell(response['description'])} | {_cell(_type(schema))} |")
    return [*lines, ""]


def routes() -> str:
    """Every route of the OpenAPI document: parameters, responses, then the schemas."""
    document = sources.openapi_document()
    out = [f"OpenAPI {document['openapi']}, API version {document['info']['version']}.", ""]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            auth = "SigV4 (IAM) in deployed stages" if operation["security"] else "none"
            out += [f"### {method.upper()} {path}", ""]
            out += [f"{operation['summary']}. Auth: {auth}.", ""]
            out += _parameters(document, operation)
            out += _responses(operation)
    out += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        out += [f"### {name} {{#{_anchor(name)}}}", ""]
        properties = schema.get("properties")
        if not properties:
            out += [_type(schema) + ("" if "$ref" in schema else "."), ""]
            continue
        required = set(schema.get("required", ()))
        out += ["| field | type | always present |", "|---|---|---|"]
        for field, field_schema in properties.items():
            present = "yes" if field in required else "no"
            out.append(f"| `{field}` | {_cell(_type(field_schema))} | {present} |")
        out.append("")
    return "\n".join(out)


@contextmanager
def _columns(width: str) -> Iterator[None]:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    return {}


def command_help(parser: argparse.ArgumentParser) -> str:
    """`--help` of the command and of each subcommand, as the parser prints it."""
    with _columns(HELP_COLUMNS):
        blocks = [(f"{parser.prog} --help", parser.format_help())]
        blocks += [
            (f"{sub.prog} --help", sub.format_help()) for sub in _subcommands(parser).values()
        ]
    out = []
    for command, text in blocks:
        out += [f"### `{command}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(out)


SECTIONS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "metrics": metrics_table,
    "routes": routes,
    "spawn-monitor help": lambda: command_help(sources.cli_parser()),
    "spawn-report help": lambda: command_help(sources.kit_parser()),
}
