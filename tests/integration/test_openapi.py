"""The OpenAPI description agrees with the routes, and real responses match it (SPEC §7)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client
from openapi_spec_validator import validate

from chalicelib.contract.openapi import document
from chalicelib.progress.history import HistoryStore
from tests.contract import check, check_response, errors, schema
from tests.integration import test_array_history
from tests.integration.test_api_arrays import BIG, Api

Harness = tuple[Api, HistoryStore, Client]
api = test_array_history.api  # the array routes with history, on moto


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_is_described_and_every_described_path_is_a_route() -> None:
    import app

    routes = {(path, m.lower()) for path, methods in app.app.routes.items() for m in methods}
    described = {(path, m) for path, ops in document()["paths"].items() for m in ops}
    assert routes == described


def test_the_document_is_served_unauthenticated_as_json() -> None:
    import app

    with Client(app.app) as client:
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body) == json.loads(json.dumps(document()))
    assert document()["paths"]["/openapi.json"]["get"]["security"] == []
    assert document()["paths"]["/fleet"]["get"]["security"] == [{"sigv4": []}]


def get(harness: Api, client: Client, path: str) -> tuple[int, Any]:
    status, body = harness.get(client, path)
    check_response(path, status, body)
    return status, body


def test_real_array_responses_match_their_schemas(api: Harness) -> None:
    harness, _, client = api
    for index in range(6, 12):  # invalid rows, as workers can write them
        harness.write(BIG, index, "exploded" if index % 2 else "running", tasks_completed="x")
    harness.write(BIG, 12, "failed", tasks_total=9, error_count=3, message="[red]boom[/red]")
    harness.aggregator.recount(BIG)
    harness.aggregator.tick(harness.wiring.now())
    paths = [
        f"/arrays/{BIG}/progress",
        f"/arrays/{BIG}/workers?limit=3",
        f"/arrays/{BIG}/workers?status=invalid",
        f"/arrays/{BIG}/workers?status=running",
        f"/arrays/{BIG}/history",
        "/arrays?limit=1",
        "/arrays",
    ]
    for path in paths:
        assert get(harness, client, path)[0] == 200, path
    _, page = get(harness, client, f"/arrays/{BIG}/workers")
    assert {w["status"] for w in page["workers"]} >= {"invalid", "failed", "completed"}
    bad = [
        "/arrays/-x/progress",
        "/arrays/-x/workers",
        "/arrays/-x/history",
        f"/arrays/{BIG}/workers?limit=0",
        f"/arrays/{BIG}/workers?status=nope",
        f"/arrays/{BIG}/workers?cursor=forged",
        f"/arrays/{BIG}/history?since=yesterday",
        "/arrays?limit=500",
    ]
    for path in bad:
        assert get(harness, client, path)[0] == 400, path
    for route in ("progress", "workers", "history"):
        assert get(harness, client, f"/arrays/nobody-20260127-abcdef/{route}")[0] == 404


def test_the_contract_check_catches_drift(api: Harness) -> None:
    harness, _, client = api
    _, body = harness.get(client, f"/arrays/{BIG}/progress")
    assert not errors(body, schema("ArrayProgress"))
    undocumented = {**body, "new_field": 1}
    assert any("new_field" in e for e in errors(undocumented, schema("ArrayProgress")))
    renamed = {**body, "workers": {**body["workers"], "done": 1}}
    assert errors(renamed, schema("ArrayProgress"))
    with pytest.raises(AssertionError):
        check({**body, "eta": "tomorrow"}, schema("ArrayProgress"))
    with pytest.raises(AssertionError, match="matches no documented path"):
        check_response(f"/arrays/{quote(BIG)}/secrets", 200, {})
