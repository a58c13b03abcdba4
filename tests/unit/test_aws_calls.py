"""Deriving AWS calls and IAM actions from source code (infra.aws_calls)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from infra.aws_calls import API_HANDLER, by_function, call_graph, find_calls, iam_actions

SOURCE = """
from __future__ import annotations
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient

class Clients:
    @cached_property
    def cloudwatch(self) -> CloudWatchClient: ...

@dataclass
class Marks:
    dynamodb: DynamoDBClient

    def mark(self) -> None:
        self.dynamodb.transact_write_items(TransactItems=[{"ConditionCheck": {}}, entry()])

def entry() -> dict:
    return {"Put": {}}

class Store:
    def __init__(self, client: DynamoDBClient | None) -> None:
        self._client = client

    def rows(self) -> None:
        client = self._client
        client.get_paginator("query").paginate(TableName="t")

def alarms(clients: Clients) -> None:
    clients.cloudwatch.describe_alarms()

def untyped(thing) -> None:
    thing.put_item(TableName="t")

class Regions:
    def _client(self, region: str) -> CloudWatchClient: ...

    def dashboards(self) -> None:
        self._client("us-east-1").list_dashboards()
"""


def actions(tmp_path: Path, source: str) -> tuple[dict[str, set[str]], set[str]]:
    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent(source))
    found = find_calls([path], root=tmp_path)
    return iam_actions(found), found.unresolved


def test_calls_are_found_through_annotations_properties_and_paginators(tmp_path: Path) -> None:
    needed, unresolved = actions(tmp_path, SOURCE)
    assert sorted(needed) == [
        "cloudwatch:DescribeAlarms",  # CloudWatch signs as "monitoring"
        "cloudwatch:ListDashboards",  # through a method returning a client
        "dynamodb:ConditionCheckItem",  # a transaction needs its items' actions
        "dynamodb:PutItem",
        "dynamodb:Query",
    ]
    assert unresolved == {"module.py:36 thing.put_item"}


PLANNED = """
from __future__ import annotations
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_logs import CloudWatchLogsClient

def plan(composite: bool) -> list:
    operation = "PutCompositeAlarm" if composite else "PutMetricAlarm"
    return [Call("cloudwatch", operation, {}, "a"), Call("logs", "CreateLogGroup", {}, "g")]

def typo() -> object:
    return Call("cloudwatch", "PutMetricAlarmz", {}, "a")

class Reader:
    logs: CloudWatchLogsClient

    def groups(self) -> None:
        pages(self.logs, "describe_log_groups", "logGroups")
"""


def test_planned_calls_and_operations_named_for_a_helper_count(tmp_path: Path) -> None:
    needed, unresolved = actions(tmp_path, PLANNED)
    assert sorted(needed) == [
        "cloudwatch:PutCompositeAlarm",  # every string the operation's name is assigned
        "cloudwatch:PutMetricAlarm",
        "logs:CreateLogGroup",
        "logs:DescribeLogGroups",  # a client and an operation's name handed to a helper
    ]
    assert unresolved == {"module.py:13 planned PutMetricAlarmz"}


GRAPH = {
    "app.py": """
from chalice.app import Chalice
from lib import runtime
app = Chalice(app_name="x")

@app.schedule("rate(1 minute)", name="tick")
def tick(event):
    runtime.store().save()

@app.route("/things")
def things():
    runtime.store().get()
    runtime.reader().get()
""",
    "lib/__init__.py": "",
    "lib/runtime.py": """
from __future__ import annotations
from lib.stores import Reader, Store, Writer

def store() -> Store:
    return Store(None)

def reader() -> Reader:
    return Writer(None)
""",
    "lib/stores.py": """
from __future__ import annotations
from typing import TYPE_CHECKING, Protocol
if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

class Store:
    def __init__(self, client: DynamoDBClient) -> None:
        self.client = client

    def get(self) -> None:
        self.client.get_item(TableName="t", Key={})

    def save(self) -> None:
        self.client.put_item(TableName="t", Item={})

class Reader(Protocol):
    def get(self) -> None: ...

class Writer:
    def __init__(self, client: DynamoDBClient) -> None:
        self.client = client

    def get(self) -> None:
        self.client.delete_item(TableName="t", Key={})
""",
}


def test_each_function_gets_the_calls_its_handler_reaches(tmp_path: Path) -> None:
    for name, source in GRAPH.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source))
    paths = sorted(tmp_path.rglob("*.py"))
    graph = call_graph(paths, root=tmp_path)
    functions = by_function(find_calls(paths, root=tmp_path), graph)
    needed = {name: sorted(iam_actions(found)) for name, found in functions.items()}
    assert graph.triggers == {"tick": "schedule", API_HANDLER: "route"}
    # The schedule saves only. The route reads through a typed Store (its `get`, not
    # `save`), and through a Protocol, whose `get` may be any class's: DeleteItem too.
    assert needed == {
        "tick": ["dynamodb:PutItem"],
        API_HANDLER: ["dynamodb:DeleteItem", "dynamodb:GetItem"],
    }
