"""Package the app for CloudFormation: `chalice package`, then make the template deployable.

1. `chalice package --stage STAGE --merge-template infra/resources.json OUT` (Chalice
   needs a region to package although it calls no AWS; it gets the one given here).
   A stage that `.chalice/config.json` does not list with `log_retention_in_days` is
   refused first: Chalice would create no log groups for it, so its logs would never
   expire.
2. Work around aws/chalice#2079 (`template.fix_log_group_names`) and rewrite
   `OUT/sam.json`.
3. Refuse the result if any reference still names nothing, in the SAM template as
   written or in the plain CloudFormation that the SAM translator makes of it
   (`translate`, the same translation a deployment sends).
4. The zip carries boto3 and botocore, pinned in requirements.txt, so the code runs on
   the SDK it is tested with; botocore's models of services the code never calls
   (`infra.aws_calls`) are dropped, which leaves a tenth of their size.
5. Add bytecode to the code zip (`add_bytecode`): Lambda's `/var/task` is read-only,
   so without `.pyc` files every cold start compiles every module it imports. They are
   compiled by this interpreter, which must be the runtime's version, with
   `unchecked-hash` invalidation (no timestamps), and the zip is rewritten with its
   entries sorted and dated 1980-01-01, so the same sources give the same zip.

`python -m infra.package --region us-east-1` (what `make package REGION=us-east-1`
runs) writes `build/sam.json` and `build/deployment.zip`.
"""

from __future__ import annotations

import argparse
import compileall
import copy
import json
import logging
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.aws_calls import deployed_sources, find_calls
from infra.template import dangling_references, fix_log_group_names

ROOT = Path(__file__).resolve().parent.parent
MERGE_TEMPLATE = ROOT / "infra" / "resources.json"
CONFIG = ROOT / ".chalice" / "config.json"
# Where Lambda unpacks the code: the paths tracebacks show.
TASK_ROOT = "/var/task"
# The earliest time a zip entry can carry: entries dated so do not depend on the clock.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Any S3 location will do for checks that do not deploy; a deployment passes its own.
PLACEHOLDER_CODE_URI = "s3://deployment-bucket/spawn-fleet-monitor/deployment.zip"


class PackageError(Exception):
    """Packaging failed; the message says why in one line or a short block."""


@dataclass
class Packaged:
    """What `package` wrote: the SAM template, the code zip, and the fixes applied."""

    directory: Path
    stage: str
    region: str
    fixes: list[str] = field(default_factory=list)
    bytecode: int = 0  # .pyc files added to the zip

    @property
    def sam_path(self) -> Path:
        return self.directory / "sam.json"

    @property
    def zip_path(self) -> Path:
        return self.directory / "deployment.zip"

    def sam(self) -> dict[str, Any]:
        return json.loads(self.sam_path.read_text())  # type: ignore[no-any-return]


def resolve_region(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The region to package for: `explicit` (make's `REGION=`), else the environment's."""
    region = explicit or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise PackageError(
            "no AWS region: add REGION=us-east-1 (or set AWS_REGION or AWS_DEFAULT_REGION)"
        )
    return region


def check_stage(stage: str, config: Mapping[str, Any]) -> None:
    """Refuse a stage without log retention: Chalice makes its functions' log groups
    only when the stage sets `log_retention_in_days`; without them Lambda creates
    groups that never expire."""
    settings = config.get("stages", {}).get(stage)
    if settings is None or "log_retention_in_days" not in settings:
        where = "is not in" if settings is None else "has no log_retention_in_days in"
        raise PackageError(
            f'stage {stage} {where} .chalice/config.json "stages": add it with '
            f'"log_retention_in_days" (else its logs never expire)'
        )


def trim_sdk_models(tree: Path, services: set[str]) -> int:
    """Drop botocore's models of the services the code never calls (they are most of
    the packaged SDK); returns how many were dropped."""
    data = tree / "botocore" / "data"
    if not data.is_dir():
        return 0
    dropped = 0
    for model in sorted(p for p in data.iterdir() if p.is_dir()):
        if model.name not in services:
            shutil.rmtree(model)
            dropped += 1
    return dropped


def add_bytecode(zip_path: Path, runtime: str, services: set[str]) -> int:
    """Keep only the SDK models of `services`, compile every module in the zip for
    `runtime` (`python3.13`) and rewrite the zip reproducibly (see the module doc).
    Returns the number of `.pyc` files added."""
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if here != runtime:
        raise PackageError(f"bytecode for {runtime} needs that interpreter; this is {here}")
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch)
        modes: dict[str, int] = {}
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                modes[info.filename] = info.external_attr
            archive.extractall(tree)
        trim_sdk_models(tree, services)
        # Chalice copies the app's `__pycache__` from the working tree: whatever a local
        # run left there is dropped, so the zip holds only bytecode compiled here.
        for stale in [*tree.glob("__pycache__/*.pyc"), *(tree / "chalicelib").rglob("*.pyc")]:
            stale.unlink()
        before = set(tree.rglob("*.pyc"))
        compiled = compileall.compile_dir(
            tree,
            quiet=2,
            ddir=TASK_ROOT,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not compiled:
            raise PackageError("a module in the package does not compile for " + runtime)
        added = set(tree.rglob("*.pyc")) - before
        files = sorted(p for p in tree.rglob("*") if p.is_file())
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                name = path.relative_to(tree).as_posix()
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.external_attr = modes.get(name, 0o644 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return len(added)


def package(stage: str, region: str, out: Path) -> Packaged:
    """Run `chalice package` into `out` and make its template deployable (see module doc)."""
    check_stage(stage, json.loads(CONFIG.read_text()))
    chalice = Path(sys.executable).parent / "chalice"
    env = {**os.environ, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    command = [str(chalice), "package", "--stage", stage, "--merge-template"]
    result = subprocess.run(  # noqa: S603 - chalice from this virtualenv, fixed arguments
        [*command, str(MERGE_TEMPLATE), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PackageError(f"chalice package failed:\n{result.stderr.strip()}")
    packaged = Packaged(out, stage, region)
    template = packaged.sam()
    packaged.fixes = fix_log_group_names(template)
    packaged.sam_path.write_text(json.dumps(template, indent=2) + "\n")
    dangling = dangling_references(template) + dangling_references(translate(template, region))
    if dangling:
        raise PackageError("unresolved references:\n" + "\n".join(f"  {d}" for d in dangling))
    runtimes = {
        resource["Properties"]["Runtime"]
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    if len(runtimes) != 1:
        raise PackageError(f"the functions do not share one runtime: {sorted(runtimes)}")
    services = {call.service for call in find_calls(deployed_sources()).calls}
    packaged.bytecode = add_bytecode(packaged.zip_path, runtimes.pop(), services)
    return packaged


def translate(
    sam: dict[str, Any], region: str, code_uri: str = PLACEHOLDER_CODE_URI
) -> dict[str, Any]:
    """The plain CloudFormation the SAM transform makes of `sam`, code taken from `code_uri`.

    This is the open-source code of CloudFormation's own `AWS::Serverless-2016-10-31`
    transform. Functions get `code_uri` (an `s3://` URI) as their code.
    """
    # Imported here: the translator is slow to import and only packaging needs it.
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    # The translator counts usage metrics for AWS's hosted transform; nothing here
    # publishes them, so its warning about unpublished metrics is noise.
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)
    template = copy.deepcopy(sam)
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    # What samtranslator's own `transform()` does, with the region given explicitly
    # (a session without credentials: the translator only reads its region).
    parameters: dict[str, Any] = {}
    to_py27_compatible_template(template, parameters)
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        translated = translator.translate(
            template, parameter_values=parameters, get_managed_policy_map=_no_managed_policies
        )
    except InvalidDocumentException as exc:
        causes = "\n".join(f"  {cause.message}" for cause in exc.causes)
        raise PackageError(f"the SAM translator rejected the template:\n{causes}") from exc
    return undo_mark_unicode_str_in_template(translated)  # type: ignore[no-any-return]


def _no_managed_policies() -> dict[str, str]:
    """The translator's managed-policy lookup. Chalice's functions name their role, so
    the translator never needs one; if it ever does, say so instead of calling IAM."""
    raise PackageError("the SAM translator asked for IAM managed policies by name")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__)
    parser.add_argument("--stage", default="prod", help="Chalice stage (default: prod)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION)")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output directory")
    args = parser.parse_args(argv)
    try:
        region = resolve_region(args.region, os.environ)
        packaged = package(args.stage, region, args.out)
    except PackageError as exc:
        print(f"make package: {exc}", file=sys.stderr)
        return 2
    for fix in packaged.fixes:
        print(f"worked around aws/chalice#2079: {fix}")
    print(f"packaged stage {args.stage} for {region}: {packaged.sam_path}, {packaged.zip_path}")
    runtimes = sorted(
        {
            r["Properties"]["Runtime"]
            for r in packaged.sam()["Resources"].values()
            if r["Type"] == "AWS::Serverless::Function"
        }
    )
    functions = sum(
        r["Type"] == "AWS::Serverless::Function" for r in packaged.sam()["Resources"].values()
    )
    size = packaged.zip_path.stat().st_size
    print(
        f"{functions} functions on {', '.join(runtimes)}; {packaged.zip_path.name} "
        f"{size / 1e6:.1f} MB with {packaged.bytecode} .pyc files"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
