"""The SDK the package carries can make every call the code makes.

The zip holds boto3 and botocore pinned in requirements.txt (not the runtime's own,
which can lag: `DescribeAlarmContributors` and `GetTelemetryEnrichmentStatus` first
appear in botocore 1.41.0). `missing_operations` reads the packaged botocore's service
models and names each call (`infra.aws_calls`) they lack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader

from infra.aws_calls import Call

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"


def pinned(package: str, requirements: Path = REQUIREMENTS) -> str:
    """The version requirements.txt pins `package` to."""
    match = re.search(rf"^{re.escape(package)}==(\S+)$", requirements.read_text(), re.MULTILINE)
    if not match:
        raise LookupError(f"{package} is not pinned in {requirements.name}")
    return match[1]


def packaged_models(data: Path) -> Callable[[str], dict[str, Any]]:
    """A lookup of the service models under `data` (a packaged `botocore/data`) only."""
    loader = Loader(extra_search_paths=[str(data)], include_default_search_paths=False)
    return lambda service: loader.load_service_model(service, "service-2")


def missing_operations(calls: Iterable[Call], model: Callable[[str], dict[str, Any]]) -> list[str]:
    """`service.operation (where)` for each call the models do not have."""
    missing = []
    for call in sorted(calls):
        try:
            operations = model(call.service)["operations"]
        except DataNotFoundError:  # no model for the service: all its calls are missing
            operations = {}
        if call.operation not in operations:
            missing.append(f"{call.service}.{xform_name(call.operation)} ({call.where})")
    return missing
