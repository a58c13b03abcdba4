"""Deploy a stage: package, upload, create or update the stack through a change set.

1. Package (`infra.package`) for the stage and region.
2. Upload `deployment.zip` to `s3://BUCKET/spawn-fleet-monitor/STAGE/<sha256>.zip`
   (content-addressed: unchanged code is neither uploaded nor redeployed).
3. Translate the SAM template to plain CloudFormation with that code location, in
   dependency order, and upload it beside the code (templates over 51,200 bytes must
   come from S3). What is deployed is what `make rehearse` creates on moto.
4. Create a change set (CREATE for a new stack, else UPDATE) with CAPABILITY_IAM
   (the template makes the functions' roles), wait for it, execute it, wait for the
   stack. An empty change set means nothing changed: it is deleted and the outputs
   printed. A failure prints the first resource that failed and why (later failures
   are usually cancellations it caused).

Stack name: `spawn-fleet-monitor` for the `prod` stage, `spawn-fleet-monitor-STAGE`
otherwise. `python -m infra.deploy --stage prod --region eu-west-1 --bucket B` is what
`make deploy STAGE=prod REGION=eu-west-1 BUCKET=B` runs. Only boto3, no AWS CLI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.package import ROOT, Packaged, PackageError, package, resolve_region, translate
from infra.template import in_dependency_order
from tools.console import invoke_setup

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

APP = "spawn-fleet-monitor"
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
Adapt = Callable[[dict[str, Any]], dict[str, Any]]


class DeployError(Exception):
    """The deployment failed; the message is what the operator needs to see."""


def stack_name(stage: str) -> str:
    """`spawn-fleet-monitor` for prod, `spawn-fleet-monitor-STAGE` for other stages."""
    return APP if stage == "prod" else f"{APP}-{stage}"


@dataclass
class Deployer:
    """Deploys packaged stages with the given clients.

    Args:
        cloudformation, s3: boto3 clients in the stage's region.
        bucket: an S3 bucket in that region for the code and the template.
        out: where progress lines go (default: print).
        sleep, poll_seconds: how to wait between status reads.
        adapt: a last change to the translated template before upload (the
            rehearsal leaves out what moto cannot create; a deployment changes nothing).
        secretsmanager: a client in the stage's region, for `delete`.
    """

    cloudformation: CloudFormationClient
    s3: S3Client
    bucket: str
    out: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    poll_seconds: float = 10.0
    adapt: Adapt = field(default=lambda template: template)
    secretsmanager: SecretsManagerClient | None = None

    def deploy(self, packaged: Packaged) -> dict[str, str]:
        """Create or update the stage's stack; returns its outputs. Raises `DeployError`."""
        stack = stack_name(packaged.stage)
        prefix = f"{APP}/{packaged.stage}"
        code_key = f"{prefix}/{_digest(packaged.zip_path.read_bytes())}.zip"
        self._upload(code_key, packaged.zip_path.read_bytes())
        template = translate(packaged.sam(), packaged.region, f"s3://{self.bucket}/{code_key}")
        body = json.dumps(self.adapt(in_dependency_order(template)), indent=1).encode()
        template_key = f"{prefix}/template-{_digest(body)}.json"
        self._upload(template_key, body)
        status = self._stack_status(stack)
        if status == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"stack {stack} failed to create earlier and must be deleted first: "
                f"make remove STAGE={packaged.stage} REGION={packaged.region}"
            )
        kind: Literal["CREATE", "UPDATE"] = (
            "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
        )
        name = f"deploy-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        change_set = self.cloudformation.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType=kind,
            TemplateURL=self._url(template_key),
            Capabilities=["CAPABILITY_IAM"],
            Tags=[{"Key": "app", "Value": APP}, {"Key": "stage", "Value": packaged.stage}],
        )["Id"]
        description = self._wait_for_change_set(change_set)
        if description["Status"] == "FAILED":
            reason = description.get("StatusReason", "")
            if any(marker in reason for marker in NO_CHANGES):
                self.cloudformation.delete_change_set(ChangeSetName=change_set)
                self.out(f"{stack}: no changes")
                return self.outputs(stack)
            raise DeployError(f"change set {name} failed: {reason}")
        self.out(f"{stack}: {kind} with {len(description.get('Changes', []))} changes ({name})")
        started = datetime.now(UTC)
        self.cloudformation.execute_change_set(ChangeSetName=change_set)
        final = self._wait_for_stack(stack)
        if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise DeployError(f"{stack}: {final}. {self.first_failure(stack)}")
        elapsed = (datetime.now(UTC) - started).total_seconds()
        self.out(f"{stack}: {final} in {elapsed:.0f}s")
        return self.outputs(stack)

    def delete(self, stage: str) -> None:
        """Delete the stage's stack (tables holding data are retained), then its secrets
        for good.

        A secret deleted with a recovery window keeps its name for 7 to 30 days, and the
        next deploy, which creates a secret of the same fixed name, would fail. The
        stack's only secret signs pagination cursors: losing it costs nothing but the
        cursors handed out, so it is deleted without recovery (a no-op if CloudFormation
        already did).
        """
        stack = stack_name(stage)
        if self._stack_status(stack) is None:
            raise DeployError(f"stack {stack} does not exist")
        secrets = [
            resource["PhysicalResourceId"]
            for page in self.cloudformation.get_paginator("list_stack_resources").paginate(
                StackName=stack
            )
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] == "AWS::SecretsManager::Secret"
            and resource.get("PhysicalResourceId")
        ]
        self.cloudformation.delete_stack(StackName=stack)
        final = self._wait_for_stack(stack)
        if final not in (None, "DELETE_COMPLETE"):
            raise DeployError(f"{stack}: {final}. {self.first_failure(stack)}")
        for secret in secrets:
            if self.secretsmanager is not None:
                self.secretsmanager.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
                self.out(f"{secret}: deleted without a recovery window")
        self.out(f"{stack}: deleted")

    def outputs(self, stack: str) -> dict[str, str]:
        [description] = self.cloudformation.describe_stacks(StackName=stack)["Stacks"]
        return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}

    def first_failure(self, stack: str) -> str:
        """The earliest failed resource of the latest operation, and CloudFormation's reason."""
        failed = None
        for page in self.cloudformation.get_paginator("describe_stack_events").paginate(
            StackName=stack
        ):
            for event in page["StackEvents"]:  # newest first
                if event["LogicalResourceId"] == stack and event.get("ResourceStatusReason") == (
                    "User Initiated"
                ):
                    return _describe(failed)
                if event["ResourceStatus"].endswith("_FAILED"):
                    failed = event
        return _describe(failed)

    def _upload(self, key: str, body: bytes) -> None:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # Without s3:ListBucket, S3 answers 403 for a missing key: upload then too.
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound", "403"):
                raise
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            self.out(f"uploaded s3://{self.bucket}/{key}")

    def _url(self, key: str) -> str:
        # Path-style, so bucket names with dots work; CloudFormation reads it from S3.
        region = self.s3.meta.region_name
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://s3.{region}.{suffix}/{self.bucket}/{key}"

    def _stack_status(self, stack: str) -> str | None:
        try:
            [description] = self.cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in exc.response["Error"].get("Message", ""):
                return None
            raise
        return description["StackStatus"]

    def _wait_for_change_set(self, change_set: str) -> Any:
        while True:
            description = self.cloudformation.describe_change_set(ChangeSetName=change_set)
            if description["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return description
            self.sleep(min(self.poll_seconds, 5.0))

    def _wait_for_stack(self, stack: str) -> str | None:
        while True:
            status = self._stack_status(stack)
            if status is None or not status.endswith("_IN_PROGRESS"):
                return status
            self.sleep(self.poll_seconds)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _describe(event: Any) -> str:
    if event is None:
        return "No failed resource reported; see the stack's events."
    return (
        f"First failure: {event['LogicalResourceId']} ({event['ResourceType']}): "
        f"{event.get('ResourceStatusReason', 'no reason given')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__)
    parser.add_argument("--stage", default="prod", help="Chalice stage (default: prod)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION)")
    parser.add_argument("--bucket", help="S3 bucket in that region for code and template")
    parser.add_argument("--delete", action="store_true", help="delete the stage's stack")
    args = parser.parse_args(argv)
    try:
        region = resolve_region(args.region, os.environ)
        if not args.bucket and not args.delete:
            raise DeployError(f"no bucket: add BUCKET=your-bucket (an S3 bucket in {region})")
        session = boto3.Session(region_name=region)
        deployer = Deployer(
            session.client("cloudformation"),
            session.client("s3"),
            args.bucket or "",
            secretsmanager=session.client("secretsmanager"),
        )
        if args.delete:
            deployer.delete(args.stage)
            return 0
        packaged = package(args.stage, region, ROOT / "build")
        for fix in packaged.fixes:
            print(f"worked around aws/chalice#2079: {fix}")
        outputs = deployer.deploy(packaged)
    except (DeployError, PackageError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"deploy: AWS said: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, outputs), default=0)
    for key, value in sorted(outputs.items()):
        print(f"{key:{width}}  {value}")
    # The console (dashboards, fleet alarms, logs) now, not at the next 6-hourly run.
    try:
        report = invoke_setup(
            session.client("cloudformation"), session.client("lambda"), stack_name(args.stage)
        )
    except (RuntimeError, BotoCoreError, ClientError) as exc:
        print(
            f"deploy: the stack is up, but its console setup failed: {exc}; retry with "
            f"python -m tools.console setup --stack {stack_name(args.stage)}",
            file=sys.stderr,
        )
        return 1
    print(f"console setup: {json.dumps(report, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
