"""The code zip: bytecode for the runtime, reproducible, and a stage's logs that expire."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from infra.package import CONFIG, Packaged, PackageError, add_bytecode, check_stage


def test_every_module_in_the_zip_has_its_bytecode(packaged: Packaged) -> None:
    with zipfile.ZipFile(packaged.zip_path) as archive:
        names = set(archive.namelist())
    sources = [n for n in names if n.endswith(".py")]
    runtime = packaged.sam()["Resources"]["APIHandler"]["Properties"]["Runtime"]
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    missing = [
        s
        for s in sources
        if f"{s.rsplit('/', 1)[0] + '/' if '/' in s else ''}__pycache__/"
        f"{s.rsplit('/', 1)[-1][:-3]}.{tag}.pyc" not in names
    ]
    assert sources
    assert missing == []
    assert packaged.bytecode >= len(sources) - len(missing)


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


def test_the_same_sources_give_the_same_zip(tmp_path: Path) -> None:
    files = {"app.py": "import lib\n", "lib/__init__.py": "X = 1\n"}
    digests = []
    for attempt in ("a", "b"):
        path = tmp_path / f"{attempt}.zip"
        _zip(path, files)
        assert add_bytecode(path, "python3.13", set()) == 2
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        pyc = archive.read("lib/__pycache__/__init__.cpython-313.pyc")
    # Flags 0b01: hash-based and unchecked, so Lambda's read-only copy is used as is.
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    assert pyc[:4] == importlib.util.MAGIC_NUMBER


def test_bytecode_for_another_runtime_is_refused(tmp_path: Path) -> None:
    _zip(tmp_path / "code.zip", {"app.py": ""})
    with pytest.raises(PackageError, match=r"bytecode for python3\.12 needs that interpreter"):
        add_bytecode(tmp_path / "code.zip", "python3.12", set())


def test_sdk_models_of_services_never_called_are_dropped(tmp_path: Path) -> None:
    _zip(
        tmp_path / "code.zip",
        {
            "botocore/data/endpoints.json": "{}",
            "botocore/data/sqs/2012-11-05/service-2.json": "{}",
            "botocore/data/iot/2015-05-28/service-2.json": "{}",
        },
    )
    add_bytecode(tmp_path / "code.zip", "python3.13", {"sqs"})
    with zipfile.ZipFile(tmp_path / "code.zip") as archive:
        assert archive.namelist() == [
            "botocore/data/endpoints.json",
            "botocore/data/sqs/2012-11-05/service-2.json",
        ]


def test_a_stage_without_log_retention_is_refused() -> None:
    config = json.loads(CONFIG.read_text())
    for stage in config["stages"]:
        check_stage(stage, config)
    with pytest.raises(PackageError) as unlisted:
        check_stage("staging", config)
    assert str(unlisted.value) == (
        'stage staging is not in .chalice/config.json "stages": add it with '
        '"log_retention_in_days" (else its logs never expire)'
    )
    with pytest.raises(PackageError, match="has no log_retention_in_days"):
        check_stage("dev", {"stages": {"dev": {"api_gateway_stage": "api"}}})
