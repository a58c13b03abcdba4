"""Rehearse a deployment on moto: the deploy script itself, against a local moto server.

1. Start a moto server on 127.0.0.1 (any free port; fake credentials, nothing leaves
   the machine) and make a bucket there.
2. Run `Deployer.deploy` exactly as `make deploy` does: package, upload the code zip,
   translate SAM to CloudFormation, change set, execute. The one difference: the
   resources moto's CloudFormation cannot create are left out of the template (and
   so are those that depend on them), each named with the reason.
3. Check, through the AWS APIs, that what the code relies on exists with the declared
   properties: tables (keys, streams), topics, queues (redrive, encryption), rules and
   their targets, functions (handler, runtime, timeout, environment, role, code),
   event source mappings, log groups, roles and the stack's outputs.
4. Check statically, on the translated template, what moto could not create (and the
   properties moto's CloudFormation ignores: TTL, point-in-time recovery).
5. Deploy again (nothing changes), write a row into every table, delete the stack,
   and check the tables and rows are still there (DeletionPolicy Retain).

`python -m infra.rehearse` (what `make rehearse` runs) prints all of it and exits 1 if
any check failed. tests/deploy runs the same `rehearse()`.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chalicelib.contract.openapi import open_paths
from chalicelib.core.settings import Settings, SettingsError
from infra.deploy import Deployer, stack_name
from infra.package import ROOT, Packaged, package, translate
from infra.policies import logical_id, policy_path
from infra.template import references, resource_dependencies

REGION = "us-east-1"
BUCKET = "spawn-fleet-monitor-rehearsal"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
FUNCTIONS_BY_ROLE = {
    f"{logical_id(name)}Role": name
    for name in json.loads((ROOT / ".chalice" / "config.json").read_text())["lambda_functions"]
}
TABLE_SETTINGS = (
    "PROGRESS_TABLE",
    "INSTANCES_TABLE",
    "ARRAYS_TABLE",
    "ALERT_HISTORY_TABLE",
    "STATS_TABLE",
)
# Types moto has a CloudFormation model for but cannot create from this template.
MOTO_GAPS = {
    "AWS::ApiGateway::RestApi": "moto needs a Name property; AWS takes the name from the "
    "OpenAPI Body",
}


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    static: bool = False


@dataclass
class Report:
    created: list[tuple[str, str, str]] = field(default_factory=list)  # type, logical, physical
    left_out: dict[str, tuple[str, str]] = field(default_factory=dict)  # logical: type, reason
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def check(self, ok: bool, what: str, static: bool = False) -> None:
        self.checks.append(Check(bool(ok), what, static))

    def lines(self) -> Iterator[str]:
        yield f"created on moto ({len(self.created)} resources):"
        for kind, logical, physical in sorted(self.created):
            yield f"  {kind:34} {logical:58} {physical}"
        yield f"moto cannot create ({len(self.left_out)}), checked statically instead:"
        for logical, (kind, reason) in sorted(self.left_out.items(), key=lambda i: i[1]):
            yield f"  {kind:34} {logical:58} {reason}"
        yield "checks:"
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            yield f"  {mark} {'(static) ' if check.static else ''}{check.what}"
        live = sum(not c.static for c in self.checks)
        yield (
            f"rehearsal {'FAILED' if self.failed else 'passed'}: {live} checks on moto, "
            f"{len(self.checks) - live} static, {len(self.failed)} failed"
        )


def moto_cannot_create(template: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Resources moto's CloudFormation cannot create, and those depending on them."""
    from moto.cloudformation.parsing import get_model_map

    models = get_model_map()
    resources = template["Resources"]
    left_out = {}
    for logical, resource in resources.items():
        kind = resource["Type"]
        if kind in MOTO_GAPS:
            left_out[logical] = (kind, MOTO_GAPS[kind])
        elif kind not in models:
            left_out[logical] = (kind, "not supported by moto's CloudFormation")
    graph = resource_dependencies(template)
    grew = True
    while grew:
        grew = False
        for logical, needs in graph.items():
            blocked = sorted(needs & set(left_out))
            if logical not in left_out and blocked:
                left_out[logical] = (resources[logical]["Type"], f"depends on {blocked[0]}")
                grew = True
    return left_out


def without(template: dict[str, Any], left_out: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """`template` without the `left_out` resources and the outputs that use them."""
    resources = {k: v for k, v in template["Resources"].items() if k not in left_out}
    outputs = {
        key: output
        for key, output in template.get("Outputs", {}).items()
        if not any(r.name.split(".", 1)[0] in left_out for r in references(output))
    }
    return {**template, "Resources": resources, "Outputs": outputs}


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # One line per request would bury the report.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def rehearse(packaged: Packaged, out: Callable[[str], None] = print) -> Report:
    """Deploy `packaged` on a fresh moto server and check it (see module doc)."""
    report = Report()
    with moto_server() as endpoint:
        session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
            region_name=packaged.region,
        )

        def client(service: str) -> Any:
            return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

        client("s3").create_bucket(Bucket=BUCKET)
        cfn = translate(packaged.sam(), packaged.region)
        report.left_out = moto_cannot_create(cfn)
        deployer = Deployer(
            client("cloudformation"),
            client("s3"),
            BUCKET,
            out=out,
            sleep=lambda _: None,
            adapt=lambda template: without(template, moto_cannot_create(template)),
        )
        outputs = deployer.deploy(packaged)
        stack = stack_name(packaged.stage)
        physical = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for r in client("cloudformation").describe_stack_resources(StackName=stack)[
                "StackResources"
            ]
        }
        for logical, resource in cfn["Resources"].items():
            if logical not in report.left_out:
                report.created.append((resource["Type"], logical, physical.get(logical, "")))
        live = Live(client, cfn, physical, packaged, report)
        live.check_all(outputs)
        check_statically(cfn, report)
        deployer.out = lambda line: report.check("no changes" in line, f"deploy again: {line}")
        deployer.deploy(packaged)
        deployer.out = out
        live.check_retained(deployer)
    return report


@dataclass
class Live:
    """Checks through the AWS APIs of the moto server."""

    client: Callable[[str], Any]
    cfn: dict[str, Any]
    physical: dict[str, str]
    packaged: Packaged
    report: Report

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical: resource.get("Properties", {})
            for logical, resource in self.cfn["Resources"].items()
            if resource["Type"] == kind and logical not in self.report.left_out
        }

    def check_all(self, outputs: dict[str, str]) -> None:
        check = self.report.check
        for kind, logical, _ in self.report.created:
            check(self.physical.get(logical) is not None, f"{kind} {logical} created")
        self.settings_name_what_exists()
        self.tables()
        self.topics()
        self.queues()
        self.rules()
        self.functions()
        self.event_source_mappings()
        self.log_groups()
        self.outputs(outputs)

    def outputs(self, outputs: dict[str, str]) -> None:
        """Each output that names a created resource resolves to it.

        moto computes no outputs for a stack made by a change set (AWS does), so an
        output missing from `outputs` is resolved here from the created resources.
        """
        for key, output in self.cfn.get("Outputs", {}).items():
            value = output["Value"]
            if "Ref" not in value or value["Ref"] in self.report.left_out:
                continue
            name = value["Ref"]
            wanted = self.packaged.region if name == "AWS::Region" else self.physical.get(name)
            got = outputs.get(key, wanted)
            self.report.check(
                wanted is not None and got == wanted, f"output {key} = {got} (Ref {name})"
            )

    def settings_name_what_exists(self) -> None:
        """Every table, topic, queue and secret a setting names is in the stack."""
        env = CONFIG["environment_variables"]
        dynamodb = self.client("dynamodb")
        existing = set(dynamodb.list_tables()["TableNames"])
        for setting in TABLE_SETTINGS:
            self.report.check(env[setting] in existing, f"table {env[setting]} ({setting}) exists")
        secrets = {
            props.get("Name")
            for resource in self.cfn["Resources"].values()
            if resource["Type"] == "AWS::SecretsManager::Secret"
            for props in [resource.get("Properties", {})]
        }
        self.report.check(
            env["CURSOR_SECRET_ID"] in secrets,
            f"secret {env['CURSOR_SECRET_ID']} (CURSOR_SECRET_ID) declared",
            static=True,
        )

    def tables(self) -> None:
        dynamodb = self.client("dynamodb")
        for props in self.of_type("AWS::DynamoDB::Table").values():
            table = dynamodb.describe_table(TableName=props["TableName"])["Table"]
            keys = table["KeySchema"] == props["KeySchema"] and sorted(
                table["AttributeDefinitions"], key=str
            ) == sorted(props["AttributeDefinitions"], key=str)
            self.report.check(keys, f"table {props['TableName']}: keys as declared")
            billing = table.get("BillingModeSummary", {}).get("BillingMode")
            self.report.check(
                billing == props["BillingMode"], f"table {props['TableName']}: {billing}"
            )
            if "StreamSpecification" in props:
                stream = table.get("StreamSpecification", {})
                wanted = props["StreamSpecification"]["StreamViewType"]
                self.report.check(
                    stream.get("StreamEnabled") and stream.get("StreamViewType") == wanted,
                    f"table {props['TableName']}: stream {stream.get('StreamViewType')}",
                )

    def topics(self) -> None:
        arns = {t["TopicArn"] for t in self.client("sns").list_topics()["Topics"]}
        env = CONFIG["environment_variables"]
        for setting in ("ALERTS_TOPIC", "CRITICAL_TOPIC"):
            [arn] = [a for a in arns if a.endswith(f":{env[setting]}")] or [None]
            self.report.check(arn is not None, f"topic {env[setting]} ({setting}): {arn}")

    def queues(self) -> None:
        sqs = self.client("sqs")
        arns = {}
        for props in self.of_type("AWS::SQS::Queue").values():
            url = sqs.get_queue_url(QueueName=props["QueueName"])["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"
            ]
            arns[props["QueueName"]] = attributes["QueueArn"]
            name = props["QueueName"]
            for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
                if key in props:
                    self.report.check(
                        attributes.get(key) == str(props[key]),
                        f"queue {name}: {key} {attributes.get(key)}",
                    )
            self.report.check(
                attributes.get("SqsManagedSseEnabled") == "true",
                f"queue {name}: SSE-SQS encryption",
            )
            if "RedrivePolicy" in props:
                redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
                self.report.check(
                    redrive.get("deadLetterTargetArn", "").endswith(":spawn-lifecycle-events-dlq")
                    and int(redrive.get("maxReceiveCount", 0))
                    == props["RedrivePolicy"]["maxReceiveCount"],
                    f"queue {name}: redrive to {redrive.get('deadLetterTargetArn')} after "
                    f"{redrive.get('maxReceiveCount')} receives",
                )
        lifecycle = CONFIG["environment_variables"]["LIFECYCLE_QUEUE"]
        self.report.check(lifecycle in arns, f"queue {lifecycle} (LIFECYCLE_QUEUE) exists")

    def rules(self) -> None:
        events = self.client("events")
        for logical, props in self.of_type("AWS::Events::Rule").items():
            name = self.physical[logical]
            rule = events.describe_rule(Name=name)
            what = props.get("ScheduleExpression") or json.dumps(props.get("EventPattern"))
            same = (
                json.loads(rule["EventPattern"]) == props["EventPattern"]
                if "EventPattern" in props
                else rule.get("ScheduleExpression") == props["ScheduleExpression"]
            )
            self.report.check(same and rule["State"] == "ENABLED", f"rule {logical}: {what}")
            targets = events.list_targets_by_rule(Rule=name)["Targets"]
            wanted = [self._arn(t["Arn"]) for t in props["Targets"]]
            self.report.check(
                sorted(t["Arn"] for t in targets) == sorted(wanted),
                f"rule {logical} targets {', '.join(a.rsplit(':', 1)[-1] for a in wanted)}",
            )

    def _arn(self, value: Any) -> str:
        """The live ARN of a `Fn::GetAtt [X, Arn]` in the template."""
        logical = value["Fn::GetAtt"][0]
        kind = self.cfn["Resources"][logical]["Type"]
        if kind == "AWS::SQS::Queue":
            url = self.physical[logical]
            attributes = self.client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"]
            )
            return str(attributes["Attributes"]["QueueArn"])
        if kind == "AWS::Lambda::Function":
            return str(
                self.client("lambda").get_function(FunctionName=self.physical[logical])[
                    "Configuration"
                ]["FunctionArn"]
            )
        raise ValueError(f"no live ARN lookup for {kind}")

    def functions(self) -> None:
        lambda_ = self.client("lambda")
        iam = self.client("iam")
        code_size = self.packaged.zip_path.stat().st_size
        for logical, props in self.of_type("AWS::Lambda::Function").items():
            config = lambda_.get_function(FunctionName=self.physical[logical])["Configuration"]
            env = config.get("Environment", {}).get("Variables", {})
            same = all(
                config.get(key) == props[key]
                for key in ("Handler", "Runtime", "Timeout", "MemorySize")
            )
            self.report.check(
                same
                and env == props["Environment"]["Variables"]
                and config["CodeSize"] == code_size,
                f"function {logical}: {config['Handler']}, {config['Runtime']}, "
                f"{config['Timeout']}s, environment and code as packaged",
            )
            try:
                Settings.from_env(env)
                self.report.check(True, f"function {logical}: environment reads as valid settings")
            except SettingsError as exc:
                self.report.check(False, f"function {logical}: {exc}")
            role = props["Role"]["Fn::GetAtt"][0]
            policies = iam.list_role_policies(RoleName=self.physical[role])["PolicyNames"]
            documents = [
                _document(
                    iam.get_role_policy(RoleName=self.physical[role], PolicyName=name)[
                        "PolicyDocument"
                    ]
                )
                for name in policies
            ]
            # Each function's own policy (infra.policies); Chalice names its role
            # `<Function>Role`, the API handler's `ApiHandlerRole`.
            function = FUNCTIONS_BY_ROLE.get(role, "")
            own = json.loads(policy_path(function).read_text()) if function else None
            self.report.check(
                config["Role"].endswith(f"/{self.physical[role]}") and own in documents,
                f"function {logical}: role {role} with .chalice/policies/{function}.json",
            )
            # The policy lets functions log only to groups named after the stack.
            group = f"arn:aws:logs:{self.packaged.region}:123456789012:log-group:/aws/lambda/"
            self.report.check(
                any(
                    fnmatch.fnmatchcase(group + config["FunctionName"], pattern)
                    for pattern in _log_resources()
                ),
                f"function {logical}: named {config['FunctionName']}, may write its logs",
            )

    def event_source_mappings(self) -> None:
        lambda_ = self.client("lambda")
        for logical, props in self.of_type("AWS::Lambda::EventSourceMapping").items():
            function = props["FunctionName"]["Ref"]
            [mapping] = lambda_.list_event_source_mappings(FunctionName=self.physical[function])[
                "EventSourceMappings"
            ]
            source = self._source_arn(props["EventSourceArn"])
            named = source.split(":")[5].split("/")[1 if ":dynamodb:" in source else 0]
            keys = [
                k for k in props if k not in ("FunctionName", "EventSourceArn", "DestinationConfig")
            ]
            same = mapping["EventSourceArn"] == source and all(
                mapping.get(k) == props[k] for k in keys
            )
            if "DestinationConfig" in props:
                destination = self._arn(props["DestinationConfig"]["OnFailure"]["Destination"])
                same = (
                    same and mapping["DestinationConfig"]["OnFailure"]["Destination"] == destination
                )
            self.report.check(
                same,
                f"event source {logical}: {named} -> {function} "
                f"({', '.join(f'{k}={props[k]}' for k in sorted(keys))})",
            )

    def _source_arn(self, value: Any) -> str:
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            table = self.client("dynamodb").describe_table(TableName=self.physical[logical])
            return str(table["Table"]["LatestStreamArn"]) if attribute == "StreamArn" else ""
        # Chalice names its SQS source by a Fn::Sub of the queue's name.
        name = value["Fn::Sub"].rsplit(":", 1)[-1]
        url = self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )
        return str(attributes["Attributes"]["QueueArn"])

    def log_groups(self) -> None:
        logs = self.client("logs")
        for logical, props in self.of_type("AWS::Logs::LogGroup").items():
            name = self.physical[logical]
            [group] = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            function = props["LogGroupName"]["Fn::Sub"].rsplit("${", 1)[-1].rstrip("}")
            self.report.check(
                group.get("retentionInDays") == props["RetentionInDays"]
                and name == f"/aws/lambda/{self.physical[function]}",
                f"log group of {function}: {group.get('retentionInDays')} days",
            )

    def check_retained(self, deployer: Deployer) -> None:
        """Write a row into every table, delete the stack: tables and rows must remain."""
        dynamodb = self.client("dynamodb")
        tables = {
            props["TableName"]: props for props in self.of_type("AWS::DynamoDB::Table").values()
        }
        for name, props in tables.items():
            dynamodb.put_item(TableName=name, Item=_sample_item(props))
        deployer.delete(self.packaged.stage)
        functions = self.client("lambda").list_functions()["Functions"]
        self.report.check(not functions, f"stack deleted: {len(functions)} functions left")
        for name, props in tables.items():
            key = {
                k["AttributeName"]: _sample_item(props)[k["AttributeName"]]
                for k in props["KeySchema"]
            }
            item = dynamodb.get_item(TableName=name, Key=key).get("Item")
            self.report.check(item is not None, f"table {name} and its rows retained after delete")


def _log_resources() -> list[str]:
    return [
        statement["Resource"]
        for statement in POLICY["Statement"]
        if "logs:PutLogEvents" in statement["Action"]
    ]


def _document(value: Any) -> Any:
    """A role policy document as read back. moto keeps one that CloudFormation created as
    the Python repr of the template's dict, where AWS returns JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def _sample_item(props: dict[str, Any]) -> dict[str, Any]:
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    return {k["AttributeName"]: {types[k["AttributeName"]]: "1"} for k in props["KeySchema"]}


def check_statically(cfn: dict[str, Any], report: Report) -> None:
    """What moto could not create or ignores, read off the translated template."""
    resources = cfn["Resources"]
    env = CONFIG["environment_variables"]
    checkers: dict[str, Callable[[str, dict[str, Any]], tuple[bool, str]]] = {
        "AWS::SecretsManager::Secret": lambda _, p: (
            p.get("Name") == env["CURSOR_SECRET_ID"] and "GenerateSecretString" in p,
            f"secret {p.get('Name')} (CURSOR_SECRET_ID), generated value",
        ),
        "AWS::SNS::Subscription": lambda _, p: _subscription(p, resources),
        "AWS::SQS::QueuePolicy": lambda _, p: _queue_policy(p, resources),
        "AWS::Lambda::EventInvokeConfig": lambda _, p: (
            resources[p["FunctionName"]["Ref"]]["Type"] == "AWS::Lambda::Function"
            and p["DestinationConfig"]["OnFailure"]["Destination"]
            == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]},
            f"{p['FunctionName']['Ref']}: failed events go to FailedEventsQueue "
            f"after {p.get('MaximumRetryAttempts')} retries",
        ),
        "AWS::ApiGateway::RestApi": lambda _, p: _rest_api(p),
        "AWS::ApiGateway::Stage": lambda _, p: (
            p.get("StageName") == CONFIG["stages"]["prod"]["api_gateway_stage"]
            and p["RestApiId"] == {"Ref": "RestAPI"},
            f"API stage {p.get('StageName')}",
        ),
        "AWS::ApiGateway::Deployment": lambda _, p: (
            p.get("RestApiId") == {"Ref": "RestAPI"},
            "API deployment of RestAPI",
        ),
        "AWS::Lambda::Permission": lambda _, p: (
            p.get("Action") == "lambda:InvokeFunction" and "Ref" in p.get("FunctionName", {}),
            f"{p.get('Principal')} may invoke {p.get('FunctionName', {}).get('Ref')}",
        ),
    }
    for logical, (kind, _) in sorted(report.left_out.items()):
        checker = checkers.get(kind)
        if checker is None:
            report.check(False, f"{kind} {logical}: left out on moto and no static check", True)
            continue
        ok, what = checker(logical, resources[logical].get("Properties", {}))
        report.check(ok, what, static=True)
    api_url = cfn.get("Outputs", {}).get("ApiUrl", {}).get("Value", {}).get("Fn::Sub", "")
    report.check(
        api_url.startswith("https://${RestAPI}.execute-api.${AWS::Region}.")
        and api_url.endswith(f"/{CONFIG['stages']['prod']['api_gateway_stage']}/"),
        f"output ApiUrl = {api_url}",
        static=True,
    )
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        name = props["TableName"]
        report.check(
            resource.get("DeletionPolicy") == resource.get("UpdateReplacePolicy") == "Retain",
            f"table {name}: DeletionPolicy and UpdateReplacePolicy Retain",
            static=True,
        )
        pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
        report.check(pitr is True, f"table {name}: point-in-time recovery (moto ignores it)", True)
        if logical in ("InstancesTable", "AlertHistoryTable", "StatsTable"):
            ttl = props.get("TimeToLiveSpecification", {})
            report.check(
                ttl == {"AttributeName": "expires_at", "Enabled": True},
                f"table {name}: TTL on expires_at (moto's CloudFormation ignores TTL)",
                static=True,
            )


def _subscription(props: dict[str, Any], resources: dict[str, Any]) -> tuple[bool, str]:
    # Chalice names the topic by an ARN built from its name, not by a Ref.
    topic = props["TopicArn"]["Fn::Sub"].rsplit(":", 1)[-1]
    topics = {
        r["Properties"]["TopicName"] for r in resources.values() if r["Type"] == "AWS::SNS::Topic"
    }
    function = props["Endpoint"]["Fn::GetAtt"][0]
    ok = (
        props["Protocol"] == "lambda"
        and topic in topics
        and resources[function]["Type"] == "AWS::Lambda::Function"
    )
    return ok, f"topic {topic} delivers to {function}"


def _queue_policy(props: dict[str, Any], resources: dict[str, Any]) -> tuple[bool, str]:
    [statement] = props["PolicyDocument"]["Statement"]
    queues = [q["Ref"] for q in props["Queues"]]
    rule = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
    ok = (
        statement["Principal"] == {"Service": "events.amazonaws.com"}
        and statement["Action"] == "sqs:SendMessage"
        and resources[rule]["Type"] == "AWS::Events::Rule"
        and all(resources[q]["Type"] == "AWS::SQS::Queue" for q in queues)
    )
    return ok, f"EventBridge rule {rule} may send to {', '.join(queues)}"


def _rest_api(props: dict[str, Any]) -> tuple[bool, str]:
    paths = props["Body"]["paths"]
    unsigned = open_paths()
    guarded = all(
        ("security" not in method)
        if path in unsigned
        else method.get("security") == [{"sigv4": []}]
        for path, methods in paths.items()
        for method in methods.values()
    )
    signed = len(set(paths) - unsigned)
    return (
        guarded,
        f"API: IAM (SigV4) auth on all {signed} routes but {', '.join(sorted(unsigned))}",
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        print(f"packaging for {REGION} ...")
        packaged = package("prod", REGION, Path(directory))
        report = rehearse(packaged)
    for line in report.lines():
        print(line)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
