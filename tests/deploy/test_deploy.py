"""The deploy script (`make deploy`), against moto; never a real endpoint.

moto's CloudFormation runs change sets synchronously and raises instead of recording
failed resources, so the failure path stubs CloudFormation's answers (botocore
`Stubber`) with the events a real failed create produces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.deploy import Deployer, DeployError, stack_name
from infra.package import Packaged
from infra.rehearse import moto_cannot_create, moto_server, without

BUCKET = "deploy-test-bucket"
ROOT = Path(__file__).resolve().parents[2]


def moto_deployer(session: boto3.Session, lines: list[str]) -> Deployer:
    session.client("s3").create_bucket(Bucket=BUCKET)
    return Deployer(
        session.client("cloudformation"),
        session.client("s3"),
        BUCKET,
        out=lines.append,
        sleep=lambda _: None,
        # What moto cannot create is left out, as in the rehearsal.
        adapt=lambda template: without(template, moto_cannot_create(template)),
    )


def test_stack_names() -> None:
    assert stack_name("prod") == "spawn-fleet-monitor"
    assert stack_name("dev") == "spawn-fleet-monitor-dev"


def test_create_then_nothing_to_change_then_new_code(
    session: boto3.Session, packaged: Packaged, tmp_path: Path
) -> None:
    lines: list[str] = []
    deployer = moto_deployer(session, lines)
    deployer.deploy(packaged)
    assert lines[-1].startswith("spawn-fleet-monitor: CREATE_COMPLETE")
    assert [line for line in lines if line.startswith("uploaded")] == [
        line
        for line in lines
        if line.startswith("uploaded s3://deploy-test-bucket/spawn-fleet-monitor/prod/")
    ]
    assert len([line for line in lines if line.startswith("uploaded")]) == 2  # code, template

    lines.clear()
    deployer.deploy(packaged)
    assert lines == ["spawn-fleet-monitor: no changes"]

    changed = Packaged(tmp_path / "changed", packaged.stage, packaged.region)
    shutil.copytree(packaged.directory, changed.directory)
    with zipfile.ZipFile(changed.zip_path, "a") as code:
        code.writestr("chalicelib/CHANGED", "new code")
    lines.clear()
    deployer.deploy(changed)
    assert lines[-1].startswith("spawn-fleet-monitor: UPDATE_COMPLETE"), lines
    status = session.client("cloudformation").describe_stacks(StackName="spawn-fleet-monitor")
    assert status["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"


def _stack(status: str, name: str = "spawn-fleet-monitor") -> dict[str, Any]:
    return {"StackName": name, "CreationTime": T0, "StackStatus": status}


def _event(logical: str, kind: str, status: str, reason: str, seconds: int) -> dict[str, Any]:
    return {
        "StackId": STACK_ID,
        "EventId": f"{logical}-{status}-{seconds}",
        "StackName": "spawn-fleet-monitor",
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "Timestamp": T0 + timedelta(seconds=seconds),
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/spawn-fleet-monitor/1"
STACK = "AWS::CloudFormation::Stack"
NOT_FOUND = "Stack with id spawn-fleet-monitor does not exist"


def test_a_failed_create_shows_the_first_failed_resource_and_why(
    session: boto3.Session, packaged: Packaged
) -> None:
    session.client("s3").create_bucket(Bucket=BUCKET)
    cloudformation = session.client("cloudformation")
    stub = Stubber(cloudformation)
    change_set = f"{STACK_ID}:changeSet/deploy"
    stub.add_client_error("describe_stacks", "ValidationError", NOT_FOUND)
    stub.add_response("create_change_set", {"Id": change_set, "StackId": STACK_ID})
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
    stub.add_response("execute_change_set", {})
    stub.add_response("describe_stacks", {"Stacks": [_stack("ROLLBACK_IN_PROGRESS")]})
    stub.add_response("describe_stacks", {"Stacks": [_stack("ROLLBACK_COMPLETE")]})
    # Newest first, as CloudFormation lists them: the cancellations the first failure
    # caused come later; a failure of an earlier operation comes before "User Initiated".
    events = [
        _event("spawn-fleet-monitor", STACK, "ROLLBACK_COMPLETE", "", 90),
        _event(
            "Lifecycle", "AWS::Lambda::Function", "CREATE_FAILED", "Resource creation cancelled", 40
        ),
        _event(
            "ProgressTable",
            "AWS::DynamoDB::Table",
            "CREATE_FAILED",
            'Resource handler returned message: "spawn-progress already exists"',
            30,
        ),
        _event("ProgressTable", "AWS::DynamoDB::Table", "CREATE_IN_PROGRESS", "", 20),
        _event("spawn-fleet-monitor", STACK, "CREATE_IN_PROGRESS", "User Initiated", 10),
        _event("OldTable", "AWS::DynamoDB::Table", "CREATE_FAILED", "an earlier attempt", 5),
    ]
    stub.add_response("describe_stack_events", {"StackEvents": events})
    lines: list[str] = []
    deployer = Deployer(cloudformation, session.client("s3"), BUCKET, lines.append, lambda _: None)
    with stub, pytest.raises(DeployError) as failure:
        deployer.deploy(packaged)
    assert str(failure.value) == (
        "spawn-fleet-monitor: ROLLBACK_COMPLETE. First failure: ProgressTable "
        '(AWS::DynamoDB::Table): Resource handler returned message: "spawn-progress already exists"'
    )
    stub.assert_no_pending_responses()


def test_a_stack_that_never_got_created_must_be_deleted_first(
    session: boto3.Session, packaged: Packaged
) -> None:
    session.client("s3").create_bucket(Bucket=BUCKET)
    cloudformation = session.client("cloudformation")
    stub = Stubber(cloudformation)
    stub.add_response("describe_stacks", {"Stacks": [_stack("ROLLBACK_COMPLETE")]})
    deployer = Deployer(cloudformation, session.client("s3"), BUCKET, print, lambda _: None)
    with (
        stub,
        pytest.raises(
            DeployError, match=r"must be deleted first: make remove STAGE=prod REGION=us-east-1$"
        ),
    ):
        deployer.deploy(packaged)


def run_deploy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "infra.deploy", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_command_says_what_is_missing_in_one_line() -> None:
    no_region = {k: v for k, v in os.environ.items() if "REGION" not in k}
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "deploy", "BUCKET=b"],  # noqa: S607
        cwd=ROOT,
        env=no_region,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "deploy: no AWS region: add REGION=us-east-1" in result.stderr
    result = run_deploy("--region", "us-east-1")
    assert (result.returncode, result.stderr) == (
        1,
        "deploy: no bucket: add BUCKET=your-bucket (an S3 bucket in us-east-1)\n",
    )


def test_removing_a_stack_that_does_not_exist_says_so() -> None:
    with moto_server() as endpoint:
        result = run_deploy(
            "--delete",
            "--stage",
            "dev",
            "--region",
            "us-east-1",
            env={"AWS_ENDPOINT_URL": endpoint},
        )
    assert (result.returncode, result.stderr) == (
        1,
        "deploy: stack spawn-fleet-monitor-dev does not exist\n",
    )


@pytest.mark.parametrize("fails", [False, True])
def test_a_deploy_runs_the_console_setup_once_the_stack_is_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fails: bool
) -> None:
    """moto cannot run a Lambda function (it needs Docker), so the stack and the invoke
    are stood in for here; `invoke_setup` itself is tested with Stubber in
    tests/integration/test_console_tools.py."""
    from infra import deploy

    order: list[str] = []

    def fake_deploy(self: Deployer, packaged: Packaged) -> dict[str, str]:
        order.append("stack")
        return {"ApiUrl": "https://example.invalid/api/"}

    def fake_setup(cloudformation: Any, lambda_client: Any, stack: str) -> dict[str, Any]:
        order.append(f"setup {stack}")
        if fails:
            raise RuntimeError("console setup failed: boom")
        return {"written": 17}

    monkeypatch.setattr(deploy, "package", lambda *a: Packaged(Path("build"), "dev", "eu-west-1"))
    monkeypatch.setattr(Deployer, "deploy", fake_deploy)
    monkeypatch.setattr(deploy, "invoke_setup", fake_setup)
    status = deploy.main(["--stage", "dev", "--region", "eu-west-1", "--bucket", BUCKET])
    out, err = capsys.readouterr()
    assert order == ["stack", "setup spawn-fleet-monitor-dev"]
    assert "ApiUrl  https://example.invalid/api/" in out
    if fails:
        assert status == 1
        assert err.startswith("deploy: the stack is up, but its console setup failed: ")
        assert err.count("\n") == 1
    else:
        assert status == 0
        assert 'console setup: {"written": 17}' in out


def test_removing_a_stack_frees_its_secrets_name_for_the_next_deploy(
    session: boto3.Session,
) -> None:
    """A secret deleted with a recovery window keeps its name for up to 30 days, and the
    next deploy creates one of the same name. CloudFormation is stubbed here (moto's
    cannot create a secret in a stack); Secrets Manager is moto's, which refuses a
    name scheduled for deletion as AWS does."""
    secrets = session.client("secretsmanager")
    name = "spawn-fleet-monitor/cursor-secret"
    arn = secrets.create_secret(Name=name, SecretString="k" * 48)["ARN"]
    secrets.delete_secret(SecretId=arn, RecoveryWindowInDays=30)  # as a stack delete may
    cloudformation = session.client("cloudformation")
    stack = stack_name("dev")
    lines: list[str] = []
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stacks",
            {"Stacks": [_stack("CREATE_COMPLETE", stack)]},
            {"StackName": stack},
        )
        stub.add_response(
            "list_stack_resources",
            {
                "StackResourceSummaries": [
                    _resource("CursorSecret", "AWS::SecretsManager::Secret", arn),
                    _resource("AlertsTopic", "AWS::SNS::Topic", "arn:aws:sns:us-east-1:1:a"),
                ]
            },
            {"StackName": stack},
        )
        stub.add_response("delete_stack", {}, {"StackName": stack})
        stub.add_client_error(
            "describe_stacks",
            "ValidationError",
            f"Stack with id {stack} does not exist",
            expected_params={"StackName": stack},
        )
        Deployer(
            cloudformation,
            session.client("s3"),
            BUCKET,
            out=lines.append,
            sleep=lambda _: None,
            secretsmanager=secrets,
        ).delete("dev")
        stub.assert_no_pending_responses()

    secrets.create_secret(Name=name, SecretString="new" * 16)  # the next deploy's
    assert lines == [f"{arn}: deleted without a recovery window", f"{stack}: deleted"]


def _resource(logical: str, kind: str, physical: str) -> dict[str, Any]:
    return {
        "LogicalResourceId": logical,
        "PhysicalResourceId": physical,
        "ResourceType": kind,
        "LastUpdatedTimestamp": datetime.now(UTC),
        "ResourceStatus": "CREATE_COMPLETE",
    }
