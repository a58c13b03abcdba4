"""The SPEC §4 row contract reaches the Lambda package by content.

`chalicelib/contract/rows.py` is a link to the workers' kit's `spawn_report/rows.py` (one
definition, never a copy). Chalice walks `chalicelib/` and zips each file it finds, so a
linked file goes in with its content; this packages the app as a deployment would and
checks that, and that the packaged backend imports the contract from the zip alone.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "kit" / "spawn_report" / "rows.py"


def test_the_row_contract_is_inside_the_deployment_package(tmp_path: Path) -> None:
    out = tmp_path / "package"
    subprocess.run(  # noqa: S603 - chalice from this virtualenv, fixed arguments
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "prod", str(out)],
        cwd=ROOT,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        check=True,
        capture_output=True,
    )
    with zipfile.ZipFile(out / "deployment.zip") as package:
        info = package.getinfo("chalicelib/contract/rows.py")
        assert not stat.S_ISLNK(info.external_attr >> 16)  # a file, not a link
        assert package.read(info) == CONTRACT.read_bytes()
        assert not any(name.startswith("spawn_report/") for name in package.namelist())
        package.extractall(tmp_path / "unzipped")

    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import chalicelib.progress.summary, chalicelib.contract.rows as rows;"
            " print(rows.__file__)",
        ],
        cwd=tmp_path / "unzipped",
        env={**os.environ, "PYTHONPATH": str(tmp_path / "unzipped")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == str(
        tmp_path / "unzipped" / "chalicelib" / "contract" / "rows.py"
    )
