"""Fuzz the HTTP API from its own OpenAPI description (schemathesis), against the local
stack: every route, with valid and invalid inputs drawn from `GET /openapi.json`.

Checks on every response: no 5xx; the status is one the route describes; the body
matches the described schema and content type (schemathesis's own checks). And ours:
an invalid parameter (a negative case) answers 400 with the error body; a valid array
id the stack has never seen answers 404.

`python -m tests.e2e.fuzz [--examples N]` (what `make fuzz` runs) starts its own stack
with the simulated fleet on, waits until an array exists, and prints the examples run
per route and the failures; it exits 1 on any failure. `tests/e2e/test_fuzz.py` runs a
bounded number on the test session's stack.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # Invalid input must be refused with 400 (SPEC §7), not any 4xx. The check knows the
    # negative cases that become valid once sent (an omitted optional parameter, a
    # number that is also a valid string), which are not invalid input.
    negative_data_rejection,
]
SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=local/20261127/us-east-1/execute-api"}
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": ["400"]}}}
)
# chalice local hands path parameters over still percent-encoded, so an array id with a
# character a client must encode (":") is refused as malformed there.
ENCODED = re.compile(r"[^A-Za-z0-9._~-]")


@dataclass
class RouteReport:
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _own_checks(case: Any, response: Any, mode: GenerationMode, known: set[str]) -> list[str]:
    """404 for a valid id of an unknown array (400 only when a query parameter the
    schema allows is refused by the route, e.g. a date that does not exist), and
    Chalice's error body on every 400 and 404."""
    problems = []
    status = response.status_code
    array_id = (case.path_parameters or {}).get("array_id")
    unknown = array_id is not None and array_id not in known
    if mode is GenerationMode.POSITIVE and unknown and not ENCODED.search(array_id):
        allowed = {404, 400} if case.query else {404}
        if status not in allowed:
            problems.append(f"unknown array {array_id!r} answered {status}, not 404")
    if status in (400, 404):
        body = response.json()
        if not (isinstance(body, dict) and {"Code", "Message"} <= set(body)):
            problems.append(f"{status} without Chalice's error body: {body!r}")
    return problems


def fuzz(api: str, examples: int, known_arrays: list[str]) -> dict[str, RouteReport]:
    """Run about `examples` cases per route (split between valid and invalid inputs,
    and, where a route takes an array id, a known array); returns a report per route."""
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json", config=CONFIG)
    known = set(known_arrays)
    reports: dict[str, RouteReport] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        report = reports.setdefault(operation.label, RouteReport())
        takes_array = any(p.name == "array_id" for p in operation.path_parameters)
        plans: list[tuple[GenerationMode, dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, None)
        ]
        if list(operation.path_parameters) or list(operation.query):
            plans.append((GenerationMode.NEGATIVE, None))
        if takes_array and known_arrays:
            plans.append((GenerationMode.POSITIVE, {"array_id": known_arrays[0]}))
        for mode, fixed in plans:
            # The local stack has no IAM authorizer (PITFALLS): a request without the
            # SigV4 header the schema requires is not invalid there.
            strategy = operation.as_strategy(
                generation_mode=mode, path_parameters=fixed, headers=dict(SIGNED)
            )
            _run(strategy, api, mode, known, report, max(1, examples // len(plans)))
    return reports


def _run(
    strategy: Any,
    api: str,
    mode: GenerationMode,
    known: set[str],
    report: RouteReport,
    examples: int,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case: Any) -> None:
        response = case.call(base_url=api, timeout=10)
        report.examples += 1
        report.statuses[response.status_code] += 1
        problems = _own_checks(case, response, mode, known)
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            problems.append(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        for problem in problems:
            report.failures.append(f"{problem}  ({case.as_curl_command()})")

    try:
        one()
    except Unsatisfiable:
        # A route without parameters has no invalid input to draw.
        assert mode is GenerationMode.NEGATIVE, "only negative cases can run out"


def summary(reports: dict[str, RouteReport]) -> str:
    lines = []
    for label, report in sorted(reports.items()):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items()))
        lines.append(
            f"{label:40s} {report.examples:5d} examples  failures {len(report.failures)}"
            f"  ({statuses})"
        )
        lines.extend(f"    {failure}" for failure in report.failures[:5])
    total = sum(r.examples for r in reports.values())
    failed = sum(len(r.failures) for r in reports.values())
    lines.append(f"{len(reports)} routes, {total} examples, {failed} failures")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.conftest import start_stack

    parser = argparse.ArgumentParser(prog="python -m tests.e2e.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=300, help="per route (300)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as directory,
        # Its own one-second timer: nothing here waits through `eventually`.
        start_stack(Path(directory), SFM_SIMULATE="1", SFM_TICK_SECONDS="1") as stack,
    ):
        deadline = time.monotonic() + 60
        arrays: list[str] = []
        while not arrays and time.monotonic() < deadline:
            time.sleep(1)
            arrays = [a["array_id"] for a in stack.get("/arrays")[1]["arrays"]]
        reports = fuzz(stack.api_endpoint, args.examples, arrays)
    print(summary(reports))
    return 1 if any(r.failures for r in reports.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
