"""The deployment: `chalice package` with the merge template, config and IAM policy.

`chalice local` and `chalice.test.Client` let IAM authorizers through, so API auth is
checked on the packaged template, as CloudFormation would receive it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
TEMPLATE = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run(  # noqa: S603 - chalice from this virtualenv, fixed arguments
        [
            str(Path(sys.executable).parent / "chalice"),
            "package",
            "--stage",
            "prod",
            "--merge-template",
            "infra/resources.json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return json.loads((out / "sam.json").read_text())["Resources"]  # type: ignore[no-any-return]


def test_every_route_but_health_requires_iam(packaged: dict[str, Any]) -> None:
    paths = packaged["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert set(paths) >= {"/health", "/fleet", "/alerts", "/arrays", "/arrays/{array_id}/progress"}
    for path, methods in paths.items():
        for method in methods.values():
            if path == "/health":
                assert "security" not in method
            else:
                assert method["security"] == [{"sigv4": []}], path


def test_merge_template_reaches_the_chalice_resources(packaged: dict[str, Any]) -> None:
    assert all("Type" in resource for resource in packaged.values())
    sqs = packaged["Lifecycle"]["Properties"]["Events"]["LifecycleSqsEventSource"]["Properties"]
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"] == {"MaximumConcurrency": 2}
    stream = packaged["ProgressStream"]["Properties"]["Events"]["ProgressRows"]["Properties"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["Stream"] == {"Fn::GetAtt": ["ProgressTable", "StreamArn"]}
    # A tumbling window makes Lambda name each batch's shard: watermarks are per shard.
    assert 0 < stream["TumblingWindowInSeconds"] <= 900
    # Event sources name their queue and topics by ARN string: order them explicitly.
    assert packaged["Lifecycle"]["DependsOn"] == ["LifecycleQueue"]
    assert packaged["AlertNotifications"]["DependsOn"] == ["AlertsTopic"]
    assert packaged["CriticalNotifications"]["DependsOn"] == ["CriticalTopic"]
    for name in ("SpotInterruption", "Rebalance", "AlertNotifications", "CriticalNotifications"):
        config = packaged[name]["Properties"]["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_config_names_match_the_infrastructure_definition() -> None:
    env = CONFIG["environment_variables"]
    props = {k: v.get("Properties", {}) for k, v in TEMPLATE.items()}
    assert env["PROGRESS_TABLE"] == props["ProgressTable"]["TableName"]
    assert env["INSTANCES_TABLE"] == props["InstancesTable"]["TableName"]
    assert env["ARRAYS_TABLE"] == props["ArraysTable"]["TableName"]
    assert env["ALERT_HISTORY_TABLE"] == props["AlertHistoryTable"]["TableName"]
    assert env["STATS_TABLE"] == props["StatsTable"]["TableName"]
    assert env["ALERTS_TOPIC"] == props["AlertsTopic"]["TopicName"]
    assert env["CRITICAL_TOPIC"] == props["CriticalTopic"]["TopicName"]
    assert env["LIFECYCLE_QUEUE"] == props["LifecycleQueue"]["QueueName"]
    assert env["CURSOR_SECRET_ID"] == props["CursorSecret"]["Name"]
    assert props["ProgressTable"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    # The queue must hide a message longer than the function may run.
    lifecycle_timeout = CONFIG["lambda_functions"]["lifecycle"]["lambda_timeout"]
    assert props["LifecycleQueue"]["VisibilityTimeout"] >= 6 * lifecycle_timeout
    for stage in CONFIG["stages"].values():
        assert stage["log_retention_in_days"] == int(env["LOG_RETENTION_DAYS"])


def test_every_stage_reads_as_valid_settings() -> None:
    for name, stage in CONFIG["stages"].items():
        env = {**CONFIG["environment_variables"], **stage.get("environment_variables", {})}
        settings = Settings.from_env(env)
        assert settings.progress_table == "spawn-progress", name


def test_policy_is_least_privilege() -> None:
    statements = POLICY["Statement"]
    for statement in statements:
        assert all("*" not in action for action in statement["Action"]), statement["Sid"]
        if statement["Resource"] == "*":
            # Only calls IAM cannot scope to a resource may use "*".
            assert statement["Action"] == ["ec2:DescribeInstances"]
    [alarms] = [s for s in statements if any(a.startswith("cloudwatch:") for a in s["Action"])]
    assert alarms["Resource"] == "arn:*:cloudwatch:*:*:alarm:spawn-*"
    resources = json.dumps(statements)
    for resource in TEMPLATE.values():
        name = resource.get("Properties", {}).get("TableName")
        if name:
            assert f"table/{name}" in resources
