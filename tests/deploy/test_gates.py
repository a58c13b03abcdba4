"""Gates on the packaged template: cfn-lint and checkov, as CloudFormation receives it.

Both templates are checked: `sam.json` as `make package` writes it, and its plain
CloudFormation translation (what `make deploy` sends).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from infra.package import Packaged

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / "infra" / "checkov.yaml"


# IAM actions newer than cfn-lint's action list (W3037), each with why it exists.
NEWER_THAN_CFN_LINT = {
    "describealarmcontributors": "CloudWatch's DescribeAlarmContributors (Metrics Insights "
    "alarm contributors, ALARM_MODE=fleet-query), in botocore 1.44.8's model, not yet in "
    "cfn-lint 1.58's IAM data",
}


@pytest.mark.parametrize("which", ["sam", "translated"])
def test_cfn_lint_is_clean(packaged: Packaged, translated_path: Path, which: str) -> None:
    path = packaged.sam_path if which == "sam" else translated_path
    matches = lint_file(path, config=ManualArgs(regions=["us-east-1"]))
    found = [f"{m.rule.id} {m.message} ({m.linenumber})" for m in matches]
    newer = [f for f in found if f.startswith("W3037 ") and f.split("'")[1] in NEWER_THAN_CFN_LINT]
    assert [f for f in found if f not in newer] == []
    if which == "translated":  # cfn-lint checks the actions of plain IAM policies only
        # When cfn-lint learns the action, this fails: the exemption can go.
        assert {f.split("'")[1] for f in newer} == set(NEWER_THAN_CFN_LINT)


def suppressions() -> dict[str, str]:
    """The checkov checks skipped in infra/checkov.yaml, each with its reason."""
    pattern = re.compile(r"^\s+- (CKV\w+)\s+#\s*(\S.*)$")
    return {
        m[1]: m[2] for line in CHECKOV_CONFIG.read_text().splitlines() if (m := pattern.match(line))
    }


def test_every_suppression_has_a_reason() -> None:
    listed = re.findall(r"^\s+- (CKV\w+)", CHECKOV_CONFIG.read_text(), re.MULTILINE)
    assert sorted(listed) == sorted(suppressions())
    assert all(len(reason) > 30 for reason in suppressions().values())


def test_checkov_finds_nothing_but_the_suppressed(
    packaged: Packaged, translated_path: Path
) -> None:
    # Run without the skip list, so a suppression that no longer finds anything is
    # reported as stale instead of silently kept.
    assert CHECKOV.exists(), "checkov is installed by `make test` into .venv-checkov"
    result = subprocess.run(  # noqa: S603 - the pinned checkov, fixed arguments
        [
            str(CHECKOV),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--compact",
            "--quiet",
            "--skip-download",
            "-f",
            str(packaged.sam_path),
            "-f",
            str(translated_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    reports: Any = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = {
        (check["check_id"], check["resource"])
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    assert all(report["summary"]["parsing_errors"] == 0 for report in reports)
    unexplained = sorted(
        f"{cid} {resource}" for cid, resource in failed if cid not in suppressions()
    )
    assert unexplained == []
    stale = sorted(set(suppressions()) - {cid for cid, _ in failed})
    assert stale == []
