"""`GET /capacity` (SPEC §15): the fleet's own history by instance type and zone.

Instance-hours, spot interruptions, interruptions per 100 instance-hours and launch
failures by code over the last 7 UTC days, from the bounded aggregates of
`chalicelib.fleet.capacity` (7 pair reads and a `BatchGetItem` per 100 pairs). The
figures are fleet-wide, so only fleet-wide readers (or isolation off) may read them.
"""

from __future__ import annotations

from typing import Any

from chalice.app import BadRequestError, Blueprint, ForbiddenError, IAMAuthorizer

from chalicelib.api.params import INSTANCE_TYPE, REGION, request_viewer
from chalicelib.container import current

capacity_api = Blueprint(__name__)
_iam = IAMAuthorizer()


def capacity_params(params: dict[str, str]) -> tuple[str | None, str | None]:
    """The optional `instance_type` (e.g. `c5.xlarge`) and `region` (e.g. `us-east-1`)
    filters (400 when malformed)."""
    instance_type, region = params.get("instance_type"), params.get("region")
    if instance_type is not None and not INSTANCE_TYPE.fullmatch(instance_type):
        raise BadRequestError("instance_type must be an EC2 instance type, e.g. c5.xlarge")
    if region is not None and not REGION.fullmatch(region):
        raise BadRequestError("region must be an AWS region name, e.g. us-east-1")
    return instance_type, region


@capacity_api.route("/capacity", methods=["GET"], authorizer=_iam)
def capacity() -> dict[str, Any]:
    wiring = current()
    viewer = request_viewer(capacity_api.current_request, wiring.settings)
    instance_type, region = capacity_params(dict(capacity_api.current_request.query_params or {}))
    if not viewer.everything:
        raise ForbiddenError(
            "GET /capacity is fleet-wide: only fleet-wide readers (FLEET_READERS) may read it"
        )
    return {"capacity": wiring.capacity.view(wiring.now(), instance_type, region)}
