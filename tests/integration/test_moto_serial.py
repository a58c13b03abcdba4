"""Concurrent DynamoDB transactions on the local stack's moto server: no 500s (moto's
"dictionary changed size during iteration") once `local.moto_serial` is applied."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from local.moto_serial import serialize_dynamodb

TABLE = "race"
THREADS = 8
ROUNDS = 40


@pytest.fixture
def client() -> Iterator[Any]:
    serialize_dynamodb()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # No retries: a 500 must show, not be absorbed.
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=THREADS * 2),
    )
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )
    for i in range(300):  # a table big enough that copying it takes a while
        client.put_item(TableName=TABLE, Item={"k": {"S": f"seed-{i}"}, "n": {"N": "0"}})
    yield client
    server.stop()


def test_concurrent_transactions_and_writes_never_fail_inside_moto(client: Any) -> None:
    failures: list[str] = []

    def work(thread: int) -> None:
        for n in range(ROUNDS):
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": TABLE,
                                "Key": {"k": {"S": f"counter-{thread}"}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Put": {"TableName": TABLE, "Item": {"k": {"S": f"t{thread}-{n}"}}}},
                    ]
                )
                client.put_item(TableName=TABLE, Item={"k": {"S": f"p{thread}-{n}"}})
            except ClientError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    counts = [
        client.get_item(TableName=TABLE, Key={"k": {"S": f"counter-{t}"}})["Item"]["n"]["N"]
        for t in range(THREADS)
    ]
    assert counts == [str(ROUNDS)] * THREADS
