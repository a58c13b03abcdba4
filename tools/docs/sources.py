"""Every project module the documentation imports, and nothing else does.

The reference pages are generated from these objects at build time, so they cannot
drift from the code. When a module moves, change its path here and only here.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# What the docs read → the module that holds it.
MODULES = {
    "settings": "chalicelib.core.settings",  # Settings: every environment variable and default
    "openapi": "chalicelib.contract.openapi",  # document(): what GET /openapi.json serves
    "catalog": "chalicelib.contract.catalog",  # PUBLISHED: every metric and its publisher
    "cli": "spawn_monitor.cli",  # parser(): the spawn-monitor command line
    "kit": "spawn_report.cli",  # parser(): the spawn-report command line
}


def _module(key: str) -> ModuleType:
    return importlib.import_module(MODULES[key])


@dataclass(frozen=True)
class Setting:
    variable: str
    default: object


def settings() -> list[Setting]:
    """Each field of the settings object, as its environment variable and default."""
    module = _module("settings")
    defaults = module.Settings()
    return [
        Setting(name.upper(), getattr(defaults, name))
        for name in module.Settings.__dataclass_fields__
    ]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the API serves at `GET /openapi.json`."""
    document: dict[str, Any] = _module("openapi").document()
    return document


def metrics() -> tuple[Any, ...]:
    """The console's catalog of metrics (`Metric` objects)."""
    published: tuple[Any, ...] = _module("catalog").PUBLISHED
    return published


def cli_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _module("cli").parser()
    return parser


def kit_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _module("kit").parser()
    return parser
