"""Deployment gates: the app packaged once per test session, as `make package` does it.

Every gate (lint, references, security scan, IAM, rehearsal, deploy script) reads the
same fresh package, so packaging runs once (about 2 s with Chalice's cache).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.package import Packaged, package, translate

REGION = "us-east-1"


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    return package("prod", REGION, tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="session")
def sam(packaged: Packaged) -> dict[str, Any]:
    return packaged.sam()


@pytest.fixture(scope="session")
def translated(packaged: Packaged) -> dict[str, Any]:
    """The plain CloudFormation a deployment sends (placeholder code location)."""
    return translate(packaged.sam(), REGION)


@pytest.fixture(scope="session")
def translated_path(packaged: Packaged, translated: dict[str, Any]) -> Path:
    path = packaged.directory / "cloudformation.json"
    path.write_text(json.dumps(translated, indent=1))
    return path
