"""Lambda runtimes inside AWS's support window, checked against a dated data file.

`infra/lambda_runtimes.json` holds the deprecation dates AWS publishes (with its source
and when it was read). A function whose runtime is past its deprecation date, or is not
in the file at all, is reported: after deprecation AWS stops patching the runtime, and
soon after blocks creating and then updating functions on it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

RUNTIMES = Path(__file__).resolve().parent / "lambda_runtimes.json"
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


def load(path: Path = RUNTIMES) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def unsupported(template: dict[str, Any], runtimes: dict[str, Any], today: date) -> list[str]:
    """One line per function whose runtime is unknown or past its deprecation date."""
    known = runtimes["runtimes"]
    found = []
    for logical, resource in sorted(template.get("Resources", {}).items()):
        if resource.get("Type") not in _FUNCTION_TYPES:
            continue
        runtime = resource.get("Properties", {}).get("Runtime")
        if runtime not in known:
            found.append(f"{logical}: runtime {runtime} has no dates in {RUNTIMES.name}")
            continue
        deprecated = date.fromisoformat(known[runtime]["deprecation"])
        if today >= deprecated:
            found.append(f"{logical}: {runtime} deprecated on {deprecated.isoformat()}")
    return found
