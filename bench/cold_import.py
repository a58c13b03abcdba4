"""Cold import of the handlers from the unzipped package, as Lambda loads them.

`make package`'s zip is unpacked into a scratch directory; each measurement is a fresh
interpreter started with `-S -I` (no site packages, no user site, no environment)
whose only path is that directory, as Lambda's `/var/task`: the SDK is the packaged
one, and the `.pyc` files are the packaged ones. The figure is the median of `RUNS`
fresh processes importing `app` (every handler is in it: Chalice's handler string is
`app.app` for each function) against the median of a bare `import boto3` in the same
run, from the same directory. The directory is made read-only first, as `/var/task` is,
so nothing is compiled and cached during the runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
TARGET = 1.3
# What Lambda sets for every function; the app reads its settings from the rest.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_LAMBDA_FUNCTION_NAME": "spawn-fleet-monitor-prod-bench",
}
# Times the import alone, inside the fresh process (interpreter start-up excluded).
TIMED = (
    "import sys, time; sys.path[:0] = [{root!r}]; t = time.perf_counter(); "
    "import {module}; print(time.perf_counter() - t)"
)


def _median_import(root: Path, module: str, env: dict[str, str]) -> float:
    times = []
    for _ in range(RUNS):
        result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-S", "-I", "-c", TIMED.format(root=str(root), module=module)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def _read_only(root: Path) -> None:
    for path in root.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)


def run() -> list[Figure]:
    from infra.package import package

    with tempfile.TemporaryDirectory() as scratch:
        out, task = Path(scratch) / "build", Path(scratch) / "task"
        packaged = package("prod", "us-east-1", out)
        with zipfile.ZipFile(packaged.zip_path) as archive:
            archive.extractall(task)
        config = json.loads((ROOT / ".chalice" / "config.json").read_text())
        env = {**config["environment_variables"], **LAMBDA_ENV}
        env["PATH"] = os.environ.get("PATH", "")
        _read_only(task)
        try:
            boto3_time = _median_import(task, "boto3", env)
            app_time = _median_import(task, "app", env)
        finally:
            for path in [task, *task.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(task)
    ratio = app_time / boto3_time
    print(f"   import app {app_time * 1000:.0f} ms, import boto3 {boto3_time * 1000:.0f} ms")
    return [
        Figure(
            f"cold import of the handlers (app) / bare import boto3, median of {RUNS}",
            ratio,
            "x",
            target=TARGET,
            detail=f"{app_time * 1000:.0f} ms vs {boto3_time * 1000:.0f} ms",
        )
    ]
