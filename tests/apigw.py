"""Requests to a Chalice app as API Gateway delivers them, caller identity included.

`chalice.test.Client` and `chalice local` build events with no IAM identity (they let
IAM authorizers through), so they cannot show what one caller sees and another does
not. This builds the Lambda proxy event API Gateway sends with IAM authorization, from
the AWS-shaped sample `events/apigw-request-iam.json`, with the caller's ARN in
`requestContext.identity.userArn`, and hands it to the app's own handler.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlparse

from chalice.app import Chalice
from chalice.local import LambdaContext, RouteMatcher

from tests.conftest import load_event

SAMPLE = "apigw-request-iam.json"


def proxy_event(app: Chalice, path: str, caller_arn: str | None) -> dict[str, Any]:
    """The event for `GET path` signed by `caller_arn`; None: a request with no IAM
    identity (as if the route had no authorizer)."""
    event = copy.deepcopy(load_event(SAMPLE))
    match = RouteMatcher(list(app.routes)).match_route(path)
    query = {k: list(v) for k, v in match.query_params.items()} or None
    event.update(
        resource=match.route,
        path=urlparse(path).path,
        pathParameters=match.captured or None,
        multiValueQueryStringParameters=query,
        queryStringParameters={k: v[-1] for k, v in query.items()} if query else None,
    )
    context = event["requestContext"]
    context.update(resourcePath=match.route, path=f"/api{urlparse(path).path}")
    identity = context["identity"]
    if caller_arn is None:
        for field in ("accountId", "caller", "accessKey", "userArn", "user"):
            identity[field] = None
    else:
        identity["userArn"] = caller_arn
    return event


def get(app: Chalice, path: str, caller_arn: str | None) -> tuple[int, Any]:
    """(status, parsed JSON body) of `GET path` as `caller_arn`."""
    response = app(proxy_event(app, path, caller_arn), LambdaContext("api_handler", 256))
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None
