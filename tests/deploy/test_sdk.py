"""The zip carries the SDK the code is tested with, and it has every call the code makes.

This proves the packaged botocore (the pinned one, the oldest this project claims to
support) has each operation's model; it does not run the SDK on Lambda.
"""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path
from typing import Any

import botocore
import pytest

from infra.aws_calls import Call, deployed_sources, find_calls
from infra.package import Packaged
from infra.sdk import missing_operations, packaged_models, pinned


@pytest.fixture(scope="module")
def unzipped(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(packaged.zip_path) as archive:
        archive.extractall(tree)
    return tree


def test_the_zip_carries_the_pinned_sdk(unzipped: Path) -> None:
    for package in ("boto3", "botocore"):
        init = (unzipped / package / "__init__.py").read_text()
        assert f"__version__ = '{pinned(package)}'" in init, package
    # The tests run on the same version.
    assert botocore.__version__ == pinned("botocore")


def test_the_packaged_sdk_has_every_call_the_code_makes(unzipped: Path) -> None:
    calls = find_calls(deployed_sources()).calls
    assert len(calls) > 50
    assert missing_operations(calls, packaged_models(unzipped / "botocore" / "data")) == []


def test_an_sdk_without_an_operation_is_caught(unzipped: Path) -> None:
    # botocore 1.40.x: no DescribeAlarmContributors in CloudWatch's model.
    models = packaged_models(unzipped / "botocore" / "data")

    def older(service: str) -> dict[str, Any]:
        model = copy.deepcopy(models(service))
        model["operations"].pop("DescribeAlarmContributors", None)
        return model

    call = Call("cloudwatch", "DescribeAlarmContributors", "x.py:1")
    assert missing_operations([call], older) == ["cloudwatch.describe_alarm_contributors (x.py:1)"]
    assert missing_operations([Call("nosuchservice", "Op", "y.py:2")], models) == [
        "nosuchservice.op (y.py:2)"
    ]
