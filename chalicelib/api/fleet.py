"""The fleet routes of the HTTP API (SPEC §7): health, fleet status, alert feed.

Answers come from maintained state (the fleet snapshot, the alert history): no EC2
or CloudWatch sweep per request. Every route but `/health` and `/openapi.json` requires
IAM (SigV4) authorization when deployed.

Per-user isolation (`chalicelib.core.access`): a fleet-wide reader gets the fleet's snapshot
and alert feed; anyone else gets the snapshot and feed of their own instances, which the
fleet tick and the alert consumer keep beside the fleet's. Either is one read.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, IAMAuthorizer

from chalicelib.alerts.feed import KINDS, AlertFilter
from chalicelib.alerts.publish import EVENT_TYPES, SEVERITIES
from chalicelib.api.params import (
    ALERTS_LIMIT_DEFAULT,
    array_id_query,
    choice_param,
    limit_param,
    request_viewer,
)
from chalicelib.container import current
from chalicelib.contract.openapi import document
from chalicelib.fleet.health import empty_snapshot
from chalicelib.fleet.snapshots import SNAPSHOT, owner_snapshot_key

api = Blueprint(__name__)
_iam = IAMAuthorizer()


@api.route("/health", methods=["GET"])
def health() -> dict[str, Any]:
    return {"status": "ok"}


@api.route("/openapi.json", methods=["GET"])
def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI description, unauthenticated like `/health` (SPEC §7)."""
    return document()


@api.route("/fleet", methods=["GET"], authorizer=_iam)
def fleet_status() -> dict[str, Any]:
    wiring = current()
    viewer = request_viewer(api.current_request, wiring.settings)
    key = SNAPSHOT if viewer.everything else owner_snapshot_key(viewer.owner)
    snapshot = wiring.stats.get_document(key)
    if snapshot is None:
        snapshot = empty_snapshot()
    snapshot.get("unhealthy", {}).pop("alerted", None)
    # SPEC §15; a caller limited to their own instances sees their own launches' failures.
    owner = None if viewer.everything else viewer.owner
    snapshot["launch_failures"] = wiring.launch_failures.fleet_view(owner=owner)
    return snapshot


@api.route("/alerts", methods=["GET"], authorizer=_iam)
def alert_history() -> dict[str, Any]:
    wiring = current()
    viewer = request_viewer(api.current_request, wiring.settings)
    params = dict(api.current_request.query_params or {})
    limit = limit_param(params, ALERTS_LIMIT_DEFAULT)
    only = AlertFilter(
        kind=choice_param(params, "kind", KINDS),
        event_type=choice_param(params, "event_type", EVENT_TYPES),
        array_id=array_id_query(params),
        severity=choice_param(params, "severity", SEVERITIES),
    )
    owner = None if viewer.everything else viewer.owner
    return {"alerts": wiring.alert_feed.latest(limit, owner, only)}
