"""The packaged template (`make package`): its content, config and IAM policy.

`chalice local` and `chalice.test.Client` let IAM authorizers through, so API auth is
checked on the packaged template, as CloudFormation would receive it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chalicelib.contract.openapi import open_paths
from chalicelib.core.settings import Settings
from infra.package import Packaged
from infra.template import dangling_references

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
TEMPLATE = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]


@pytest.fixture(scope="module")
def packaged_resources(sam: dict[str, Any]) -> dict[str, Any]:
    return sam["Resources"]  # type: ignore[no-any-return]


def test_every_route_but_health_and_openapi_requires_iam(
    packaged_resources: dict[str, Any],
) -> None:
    paths = packaged_resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert set(paths) >= {
        "/health",
        "/openapi.json",
        "/fleet",
        "/alerts",
        "/arrays",
        "/arrays/{array_id}/progress",
        "/arrays/{array_id}/history",
    }
    assert open_paths() == {"/health", "/openapi.json"}
    for path, methods in paths.items():
        for method in methods.values():
            if path in open_paths():
                assert "security" not in method
            else:
                assert method["security"] == [{"sigv4": []}], path


def test_merge_template_reaches_the_chalice_resources(packaged_resources: dict[str, Any]) -> None:
    assert all("Type" in resource for resource in packaged_resources.values())
    sqs = packaged_resources["Lifecycle"]["Properties"]["Events"]["LifecycleSqsEventSource"][
        "Properties"
    ]
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"] == {"MaximumConcurrency": 2}
    stream = packaged_resources["ProgressStream"]["Properties"]["Events"]["ProgressRows"][
        "Properties"
    ]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["Stream"] == {"Fn::GetAtt": ["ProgressTable", "StreamArn"]}
    # A tumbling window makes Lambda name each batch's shard: watermarks are per shard.
    assert 0 < stream["TumblingWindowInSeconds"] <= 900
    # Event sources name their queue and topics by ARN string: order them explicitly.
    assert packaged_resources["Lifecycle"]["DependsOn"] == ["LifecycleQueue"]
    assert packaged_resources["AlertNotifications"]["DependsOn"] == ["AlertsTopic"]
    assert packaged_resources["CriticalNotifications"]["DependsOn"] == ["CriticalTopic"]
    asynchronous = [
        name
        for name, r in packaged_resources.items()
        if r["Type"] == "AWS::Serverless::Function"
        and any(e["Type"] in ("Schedule", "CloudWatchEvent", "SNS") for e in _events(r))
    ]
    assert len(asynchronous) == 12  # six schedules, four EventBridge rules, two topics
    for name in asynchronous:
        config = packaged_resources[name]["Properties"]["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"]["Type"] == "SQS", name
    for name in ("FleetTick", "ProgressTick", "ArrayDashboards"):
        # Every minute: a retry or a late start would run beside the next tick.
        config = packaged_resources[name]["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] == 0, name
        assert config["MaximumEventAgeInSeconds"] == 60, name


def _events(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resource["Properties"].get("Events", {}).values())


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
        # Deployed stages never fail open: each caller sees only their own (SPEC §7).
        assert settings.api_isolation == "iam", name


# Actions the Service Authorization Reference lists with no resource type: IAM can only
# grant them on "*". Each with why the system needs it.
UNSCOPABLE_ACTIONS = {
    "ec2:DescribeInstances": "read managed instances' tags and states",
    "ec2:DescribeSubnets": "the zone of a subnet a failed launch names (launch failures)",
    "cloudwatch:ListDashboards": "console setup finds its spawn-fleet / spawn-array-* dashboards",
    "cloudwatch:GetMetricData": "fleet-query's coverage check runs its alarm's query",
    "cloudwatch:DescribeAnomalyDetectors": "console setup reads its anomaly detectors",
    "cloudwatch:PutAnomalyDetector": "spawn-cpu-anomaly and spawn-cost-anomaly need a model",
    "cloudwatch:DeleteAnomalyDetector": "console setup removes Spawn/* detectors it no longer has",
    "logs:DescribeQueryDefinitions": "console setup reads its spawn/ saved queries",
    "logs:PutQueryDefinition": "console setup saves the guide's Logs Insights queries",
    "logs:DeleteQueryDefinition": "console setup removes spawn/ queries it no longer describes",
    "observabilityadmin:GetTelemetryEnrichmentStatus": "ALARM_MODE=fleet-query's precondition",
    "observabilityadmin:StartTelemetryEnrichment": "ENABLE_TELEMETRY_ENRICHMENT=true turns it on",
    "ce:ListCostAllocationTags": "billed_costs reads the bill only once its tag is active",
    "ce:GetCostAndUsage": "billed_costs reads the finished arrays' bill, grouped by tag",
    "ec2:DescribeVolumes": "the EBS volumes a running instance is billed for (cost)",
    "ec2:DescribeSpotPriceHistory": "the spot price of a type and zone over a run (cost)",
    "pricing:GetProducts": "on-demand and EBS prices from the Price List API (cost)",
}


def test_policy_is_least_privilege() -> None:
    statements = POLICY["Statement"]
    for statement in statements:
        assert all("*" not in action for action in statement["Action"]), statement["Sid"]
        if statement["Resource"] == "*":
            # Only calls IAM cannot scope to a resource may use "*".
            assert set(statement["Action"]) <= set(UNSCOPABLE_ACTIONS), statement["Sid"]
    alarm_actions = {
        action
        for s in statements
        for action in s["Action"]
        if s["Resource"] == "arn:*:cloudwatch:*:*:alarm:spawn-*"
    }
    assert alarm_actions >= {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"}
    for statement in statements:
        for action in statement["Action"]:
            if "Alarm" in action and statement["Resource"] != "*":
                assert statement["Resource"] == "arn:*:cloudwatch:*:*:alarm:spawn-*", action
            if "Dashboard" in action and action != "cloudwatch:ListDashboards":
                assert statement["Resource"] == "arn:*:cloudwatch::*:dashboard/spawn-*", action
    log_writes = {
        action
        for s in statements
        for action in s["Action"]
        if action.startswith("logs:") and s["Resource"] != "*"
    }
    scoped = {
        json.dumps(s["Resource"])
        for s in statements
        if any(a in log_writes - {"logs:DescribeLogGroups"} for a in s["Action"])
    }
    assert scoped <= {
        json.dumps("arn:*:logs:*:*:log-group:/aws/lambda/spawn-fleet-monitor-*"),
        json.dumps("arn:*:logs:*:*:log-group:/aws/spawn/*"),
        # The API reads the workers' group only (SPEC §16).
        json.dumps(
            [
                "arn:*:logs:*:*:log-group:/aws/spawn/workers",
                "arn:*:logs:*:*:log-group:/aws/spawn/workers:*",
            ]
        ),
    }, scoped
    resources = json.dumps(statements)
    for resource in TEMPLATE.values():
        name = resource.get("Properties", {}).get("TableName")
        if name:
            assert f"table/{name}" in resources
        for index in resource.get("Properties", {}).get("GlobalSecondaryIndexes", []):
            assert f"table/{name}/index/{index['IndexName']}" in resources


def test_make_package_without_a_region_says_so_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "package"],  # noqa: S607 - the README's command
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "make package: no AWS region: add REGION=us-east-1 "
        "(or set AWS_REGION or AWS_DEFAULT_REGION)"
    ) in result.stderr.splitlines()


def test_the_chalice_2079_workaround_is_still_needed_and_works(packaged: Packaged) -> None:
    # Fails once Chalice names the API handler's log group correctly: then delete
    # `fix_log_group_names` and this test (aws/chalice#2079).
    assert packaged.fixes == [
        "ApiHandlerLogGroup: /aws/lambda/${ApiHandler} -> /aws/lambda/${APIHandler}"
    ]
    group = packaged.sam()["Resources"]["ApiHandlerLogGroup"]["Properties"]["LogGroupName"]
    assert group == {"Fn::Sub": "/aws/lambda/${APIHandler}"}


def test_every_reference_resolves(sam: dict[str, Any], translated: dict[str, Any]) -> None:
    assert dangling_references(sam) == []
    assert dangling_references(translated) == []
    # The translation is what CloudFormation deploys: it holds no SAM types any more.
    assert not [r for r in translated["Resources"].values() if "Serverless" in r["Type"]]


def test_outputs_name_what_a_deployment_needs_to_be_found(sam: dict[str, Any]) -> None:
    outputs = sam["Outputs"]
    assert outputs["ApiUrl"]["Value"] == outputs["EndpointURL"]["Value"]  # Chalice's own
    assert outputs["AlertsTopicArn"]["Value"] == {"Ref": "AlertsTopic"}
    assert outputs["CriticalTopicArn"]["Value"] == {"Ref": "CriticalTopic"}
    assert outputs["Region"]["Value"] == {"Ref": "AWS::Region"}
    for table in ("Progress", "Instances", "Arrays", "AlertHistory", "Stats"):
        assert outputs[f"{table}TableName"]["Value"] == {"Ref": f"{table}Table"}


def test_data_is_retained_and_encrypted_at_rest(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    tables = {k: r for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert len(tables) == 5
    for logical, table in tables.items():
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", logical
        # No SSESpecification: DynamoDB encrypts with the AWS-owned key, at no charge.
        assert table["Properties"].get("SSESpecification", {}).get("SSEEnabled") in (None, False)
        pitr = table["Properties"]["PointInTimeRecoverySpecification"]
        assert pitr == {"PointInTimeRecoveryEnabled": True}, logical
    for logical, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue":
            assert props["SqsManagedSseEnabled"] is True, logical
        if resource["Type"] == "AWS::SNS::Topic":
            # Topics stay unencrypted (KMS is never free). The AWS-managed key would
            # stop CloudWatch alarms from publishing; a customer key would need a key
            # policy for cloudwatch.amazonaws.com and events.amazonaws.com.
            assert "KmsMasterKeyId" not in props, logical
