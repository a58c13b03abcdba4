"""Package the app for CloudFormation: `chalice package`, then make the template deployable.

1. `chalice package --stage STAGE --merge-template infra/resources.json OUT` (Chalice
   needs a region to package although it calls no AWS; it gets the one given here).
2. Work around aws/chalice#2079 (`template.fix_log_group_names`) and rewrite
   `OUT/sam.json`.
3. Refuse the result if any reference still names nothing, in the SAM template as
   written or in the plain CloudFormation that the SAM translator makes of it
   (`translate`, the same translation a deployment sends).

`python -m infra.package --region us-east-1` (what `make package REGION=us-east-1`
runs) writes `build/sam.json` and `build/deployment.zip`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.template import dangling_references, fix_log_group_names

ROOT = Path(__file__).resolve().parent.parent
MERGE_TEMPLATE = ROOT / "infra" / "resources.json"
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


def package(stage: str, region: str, out: Path) -> Packaged:
    """Run `chalice package` into `out` and make its template deployable (see module doc)."""
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
