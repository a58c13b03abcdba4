"""`pip install` of the kit's folder alone brings boto3 and nothing of Chalice, moto or
Powertools, and gives a working `spawn-report` (SPEC §12).

The kit folder is copied out of the repository first, so it must build on its own (as
from a copied folder or `pip install "git+…#subdirectory=kit"`). Each interpreter's
virtualenv is kept under `.venv/kit-alone/`, keyed by a hash of the kit's files, so a
rerun without kit changes only re-checks it. The oldest Python the kit supports (3.9)
is tested too when this machine has one (pyenv).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KIT = ROOT / "kit"
CACHE = ROOT / ".venv" / "kit-alone"
# boto3 and what boto3 itself requires.
ALLOWED = {
    "spawn-report",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
}


def interpreters() -> list[str]:
    found = [sys.executable]
    oldest = sorted((Path.home() / ".pyenv" / "versions").glob("3.9.*/bin/python3.9"))
    if oldest:
        found.append(str(oldest[-1]))
    return found


def kit_hash(python: str) -> str:
    digest = hashlib.sha256(python.encode())
    for path in sorted(KIT.rglob("*")):
        if path.is_file() and "egg-info" not in str(path) and "__pycache__" not in str(path):
            digest.update(str(path.relative_to(KIT)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def run(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed commands on this machine
        command, capture_output=True, text=True, check=True, timeout=600, **kwargs
    )


def installed_alone(python: str, tmp_path: Path) -> Path:
    """A virtualenv of `python` holding the kit and what pip resolved for it, nothing else.

    The wheel is built from a copy of the kit's folder alone. The virtualenv is made
    without pip, and `python`'s own pip installs into it (`--python`), which saves the
    pip bootstrap; `pip list` then shows exactly what the kit brought.
    """
    venv = CACHE / kit_hash(python)
    if (venv / "installed").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    copy = tmp_path / "kit"
    shutil.copytree(KIT, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    # setuptools ≥ 61 (the kit's build requirement) is in the dev virtualenv already.
    wheels = tmp_path / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(wheels),
        str(copy),
    )
    [wheel] = wheels.glob("spawn_report-*.whl")
    run(python, "-m", "venv", "--without-pip", str(venv))
    run(python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel))
    (venv / "installed").touch()
    return venv


def pip_list(python: str, venv: Path) -> set[str]:
    listed = run(
        python, "-m", "pip", "--python", str(venv / "bin" / "python"), "list", "--format=json"
    ).stdout
    return {p["name"].lower().replace("_", "-") for p in json.loads(listed)}


@pytest.mark.parametrize("python", interpreters(), ids=lambda p: Path(p).name)
def test_the_kit_installs_alone_with_boto3(python: str, tmp_path: Path) -> None:
    venv = installed_alone(python, tmp_path)
    bin_dir = venv / "bin"

    names = pip_list(python, venv)
    assert names <= ALLOWED, names - ALLOWED
    assert {"spawn-report", "boto3"} <= names
    assert not names & {"chalice", "moto", "aws-lambda-powertools"}

    assert run(str(bin_dir / "spawn-report"), "--version").stdout.strip() == "spawn-report 0.1.0"
    env = {
        **os.environ,
        "SPAWN_REPORT_DIR": str(tmp_path / "spool"),
        "SPAWN_REPORT_BACKGROUND": "false",
        "SPAWN_REPORT_ROWS_AT_ONCE": "false",  # the row waits too: no AWS here
        "JOB_ARRAY_ID": "render-20260127-a1b2c3",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(JOB_ARRAY_INDEX="4", SPAWN_INSTANCE_ID="i-0123456789abcdef0", SPAWN_HOSTNAME="h")
    # Spooled only (nothing is due), so no AWS: the row is built and validated by the
    # shared contract on this Python, the metric checked against CloudWatch's rules.
    for report in (["metric", "Done", "1"], ["progress", "--status", "running", "--tasks", "3"]):
        done = run(str(bin_dir / "spawn-report"), *report, "--strict", env=env)
        assert done.stderr == ""
    spooled = (tmp_path / "spool" / "pending.jsonl").read_text().splitlines()
    metric, row, *counters = (json.loads(line) for line in spooled)
    assert metric["value"] == 1.0
    assert row["row"]["tasks_completed"] == 3
    assert row["row"]["last_update"].endswith("Z")
    assert [(c["name"], c["value"], c["dimensions"]) for c in counters] == [
        ("TasksCompleted", 3.0, {}),
        ("ErrorCount", 0.0, {}),
    ]
    library = run(
        str(bin_dir / "python"),
        "-c",
        "from spawn_report import Reporter; import spawn_report.rows as r; print(r.STATUSES)",
    )
    assert library.stdout.strip() == "('running', 'completed', 'failed')"
    # `run` on this Python, with AWS unreachable: the job's status and output are its own.
    down = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "SPAWN_REPORT_BUDGET_SECONDS": "0.5"}
    job = subprocess.run(  # noqa: S603 - the installed console script
        [
            str(bin_dir / "spawn-report"),
            "run",
            "--",
            str(bin_dir / "python"),
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)",
        ],
        env=down,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (job.returncode, job.stdout) == (4, "out\n")
    assert job.stderr.startswith("err\n")
