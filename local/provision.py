"""Provision the local stack from the same CloudFormation resources a deployment merges.

Reads `infra/resources.json` and creates each resource of a type the local stack
knows on the moto endpoint, resolving the few intrinsics the file uses (`Ref`,
`Fn::GetAtt` … `Arn`/`StreamArn`). Entries without a `Type` are overlays merged into
Chalice-made resources and have nothing to create here; IAM-only resources (queue
policies) have no effect on moto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "resources.json"
IGNORED_TYPES = frozenset({"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"})


@dataclass
class Provisioned:
    """Physical ids of what was created, by logical id."""

    names: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    stream_arns: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _resolve(value: Any, done: Provisioned) -> Any:
    if isinstance(value, dict):
        if "Ref" in value:
            logical = value["Ref"]
            return done.queue_urls.get(logical) or done.arns.get(logical) or done.names[logical]
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            if attribute == "StreamArn":
                return done.stream_arns[logical]
            return done.arns[logical]
        return {k: _resolve(v, done) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, done) for v in value]
    return value


def provision(session: boto3.Session, template: dict[str, Any] | None = None) -> Provisioned:
    """Create every resource of the template that the local stack can run."""
    resources = (template or load_template())["Resources"]
    done = Provisioned(resources=resources)
    clients = _ClientPerService(session)
    pending = {k: v for k, v in resources.items() if "Type" in v and v["Type"] not in IGNORED_TYPES}
    # Resources depend on each other only through GetAtt/Ref; retry until all resolve.
    while pending:
        progressed = False
        for logical, resource in list(pending.items()):
            try:
                properties = _resolve(resource.get("Properties", {}), done)
            except KeyError:
                continue
            _create(clients, logical, resource["Type"], properties, done)
            del pending[logical]
            progressed = True
        if not progressed:
            raise ValueError(f"cannot provision {sorted(pending)}: unresolved references")
    return done


class _ClientPerService:
    """One client per service for a whole provisioning (making a client costs more than
    most of the calls it makes here)."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self._session.client(service)  # type: ignore[call-overload]
        return self._made[service]


def _create(
    session: _ClientPerService, logical: str, kind: str, props: dict[str, Any], done: Provisioned
) -> None:
    if kind == "AWS::DynamoDB::Table":
        _table(session.client("dynamodb"), logical, props, done)
    elif kind == "AWS::SNS::Topic":
        arn = session.client("sns").create_topic(Name=props["TopicName"])["TopicArn"]
        done.names[logical], done.arns[logical] = props["TopicName"], arn
    elif kind == "AWS::SQS::Queue":
        sqs = session.client("sqs")
        attributes: dict[str, Any] = {
            key: _attribute(value) for key, value in props.items() if key != "QueueName"
        }
        url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        done.names[logical], done.arns[logical], done.queue_urls[logical] = (
            props["QueueName"],
            arn,
            url,
        )
    elif kind == "AWS::Events::Rule":
        events = session.client("events")
        bus = props.get("EventBusName", "default")
        arn = events.put_rule(
            Name=props["Name"],
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
            EventBusName=bus,
        )["RuleArn"]
        targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets", [])]
        if targets:
            events.put_targets(Rule=props["Name"], EventBusName=bus, Targets=targets)
        done.names[logical], done.arns[logical] = props["Name"], arn
    elif kind == "AWS::SecretsManager::Secret":
        generate = props.get("GenerateSecretString", {})
        secrets = session.client("secretsmanager")
        value = secrets.get_random_password(
            PasswordLength=generate.get("PasswordLength", 32),
            ExcludePunctuation=generate.get("ExcludePunctuation", False),
        )["RandomPassword"]
        arn = secrets.create_secret(Name=props["Name"], SecretString=value)["ARN"]
        done.names[logical], done.arns[logical] = props["Name"], arn
    else:
        raise ValueError(f"{logical}: the local stack cannot provision {kind}")


def _attribute(value: Any) -> str:
    """A CloudFormation queue property as an SQS attribute string (`true`, not `True`)."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _table(client: Any, logical: str, props: dict[str, Any], done: Provisioned) -> None:
    name = props["TableName"]
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    for key in ("GlobalSecondaryIndexes", "StreamSpecification"):
        if key in props:
            request[key] = props[key]
    if "StreamSpecification" in request:
        request["StreamSpecification"] = {"StreamEnabled": True, **request["StreamSpecification"]}
    table = client.create_table(**request)["TableDescription"]
    if "TimeToLiveSpecification" in props:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
        )
    if "PointInTimeRecoverySpecification" in props:
        client.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"],
        )
    done.names[logical], done.arns[logical] = name, table["TableArn"]
    if "LatestStreamArn" in table:
        done.stream_arns[logical] = table["LatestStreamArn"]
