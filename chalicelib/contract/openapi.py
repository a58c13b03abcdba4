"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.

The one definition of the API's contract, kept beside the routes: tests hold every
route to a described path and back, validate real responses against these schemas
(JSON Schema 2020-12) and test the CLI against the same document. Objects list every
field (`additionalProperties: false`), so an undescribed new field fails the tests.

Example:
    >>> "/arrays/{array_id}/progress" in document()["paths"]
    True
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.alerts.feed import KINDS
from chalicelib.alerts.publish import EVENT_TYPES, SEVERITIES
from chalicelib.api.params import (
    ALERTS_LIMIT_DEFAULT,
    ARRAY_ID,
    INSTANCE_TYPE,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    REGION,
    WORKER_STATUSES,
)
from chalicelib.contract.rows import LOST_CAUSES, STATUSES
from chalicelib.worker_logs import bounds as log_bounds

VERSION = "1.0.0"
TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A closed object: `required` fields always present, `optional` ones may be."""
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


COUNT = ref("Count")
TIME = ref("Time")
TEXT = {"type": "string"}
COUNTS_BY = {"type": "object", "additionalProperties": COUNT}
PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
USD = {"type": "number", "minimum": 0}
ROW_FIELDS = {
    "task_index": COUNT,
    # A running row whose instance ended without a final report shows as lost (SPEC §7).
    "status": {"type": "string", "enum": [*STATUSES, "lost"]},
    "tasks_completed": COUNT,
    "last_update": TIME,
    "instance_id": TEXT,
    "hostname": TEXT,
    "tasks_total": nullable(COUNT),
    "error_count": nullable(COUNT),
    "message": nullable(TEXT),
    "lost_cause": nullable({"type": "string", "enum": list(LOST_CAUSES)}),
}
# How the job ended, when `spawn-report run` recorded it (SPEC §16); absent otherwise.
ROW_ENDED = {
    "exit_code": {"type": "integer", "minimum": 0, "maximum": 255},
    "signal": {"type": "string", "pattern": "^SIG[A-Z][A-Z0-9+]*$"},
}

SCHEMAS: dict[str, Any] = {
    "Count": {"type": "integer", "minimum": 0},
    "Time": {"type": "string", "pattern": TIME_PATTERN, "description": "ISO-8601 UTC, Z"},
    "ArrayId": {"type": "string", "pattern": ARRAY_ID.pattern},
    "Cursor": nullable({"type": "string", "minLength": 1}),
    "Error": {
        **obj({"Code": TEXT, "Message": TEXT}),
        "description": "Chalice's error body: 400 bad input, 404 unknown array.",
    },
    "GatewayError": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": TEXT},
        "description": "API Gateway's body when IAM authorization fails (deployed stages).",
    },
    "Health": obj({"status": {"const": "ok"}}),
    "Fleet": obj(
        {
            "instances": obj(
                {
                    "total": COUNT,
                    "running": COUNT,
                    "by_state": COUNTS_BY,
                    "by_type": COUNTS_BY,
                    "by_availability_zone": COUNTS_BY,
                    "by_lifecycle": COUNTS_BY,
                }
            ),
            "unhealthy": obj(
                {
                    "count": COUNT,
                    "percent": PERCENT,
                    "instance_ids": {"type": "array", "items": TEXT},
                }
            ),
            "interruptions": obj({"last_hour": COUNT, "last_24h": COUNT, "total": COUNT}),
            "active_arrays": {"type": "array", "items": TEXT},
            "updated_at": nullable(TIME),
        },
        {
            "launch_failures": obj({"last_hour": COUNTS_BY, "last_24h": COUNTS_BY}),
            "cost": ref("FleetCost"),
        },
    ),
    "FleetCost": obj({"usd_per_hour": USD, "usd_today": USD, "usd_month_to_date": nullable(USD)}),
    "ArrayCost": obj(
        {
            "usd": USD,
            "usd_per_hour": USD,
            "projected_usd": nullable(USD),
            "budget_usd": nullable(USD),
            "by_lifecycle": obj({"spot": USD, "on_demand": USD}),
            "on_demand_equivalent_usd": USD,
            "breakdown": obj({"compute": USD, "storage": USD, "ipv4": USD}),
            "price_source": {
                "type": "string",
                "description": "every source that priced part of the figure, joined by "
                "`+` (price-list, spot-history, snapshot:DATE), then any "
                "`unpriced:REASON`; `none` before the first priced run",
            },
            "as_of": nullable(TIME),
        },
        {
            "unpriced": {"type": "object", "additionalProperties": COUNT},
            # Once Cost Explorer has the finished array's bill (SPEC §14, docs/cost-alerts.md).
            "billed_usd": USD,
            "billed_error_percent": {"type": "number"},
            "billed_as_of": TIME,
        },
    ),
    "Alert": {
        "description": "One entry of the alert feed: an alarm change or an alert sent.",
        "oneOf": [ref("AlarmEntry"), ref("SystemEntry")],
    },
    "AlarmEntry": obj(
        {
            "kind": {"const": "alarm"},
            "at": TIME,
            "severity": {
                "type": "string",
                "enum": sorted(SEVERITIES),
                "description": "info: back to OK; critical: seen on the critical topic; "
                "else warning",
            },
            "alarm_name": TEXT,
            "new_state": {"type": "string", "enum": ["OK", "ALARM", "INSUFFICIENT_DATA"]},
            "reason": TEXT,
            "changed_at": TIME,
            "topic": TEXT,
        },
        {"old_state": TEXT, "instance_id": TEXT, "check": TEXT, "array_id": TEXT},
    ),
    "SystemEntry": obj(
        {
            "kind": {"const": "system"},
            "at": TIME,
            "severity": {"type": "string", "enum": sorted(SEVERITIES)},
            "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
            "subject": TEXT,
            "topic": TEXT,
        },
        {"array_id": TEXT, "instance_id": TEXT, "details": {"type": "object"}},
    ),
    "AlertList": obj({"alerts": {"type": "array", "items": ref("Alert")}}),
    "Row": {**obj(ROW_FIELDS, ROW_ENDED), "description": "A valid worker row (SPEC §4)."},
    "Worker": {
        "oneOf": [
            obj({**ROW_FIELDS, "stalled": {"type": "boolean"}}, ROW_ENDED),
            obj(
                {
                    "task_index": {"description": "as found in the row, possibly not a number"},
                    "status": {"const": "invalid"},
                    "stalled": {"const": False},
                    "invalid_reason": TEXT,
                    "attributes": {"type": "object"},
                }
            ),
        ]
    },
    "WorkerPage": obj(
        {"workers": {"type": "array", "items": ref("Worker")}, "next": ref("Cursor")}
    ),
    "WorkerCounts": obj(
        {
            "total": COUNT,
            "pending": COUNT,
            "running": COUNT,
            "completed": COUNT,
            "failed": COUNT,
            "lost": COUNT,
            "stalled": COUNT,
            "invalid": COUNT,
        },
    ),
    "ArrayProgress": obj(
        {
            "array_id": ref("ArrayId"),
            "name": nullable(TEXT),
            "size": nullable(COUNT),
            "workers": ref("WorkerCounts"),
            "lost_workers": obj({cause: COUNT for cause in LOST_CAUSES}),
            "instances_gone": {
                "type": "boolean",
                "description": "no instance of the array is left in EC2: the array is over",
            },
            "tasks_completed": COUNT,
            "percent_complete": PERCENT,
            "started_at": nullable(TIME),
            "updated_at": nullable(TIME),
            "eta": nullable(TIME),
            "eta_seconds": nullable(COUNT),
            "recent": {"type": "array", "items": ref("Row"), "maxItems": 5},
            "tasks": ref("Tasks"),
            "progress_basis": {
                "type": "string",
                "enum": ["tasks", "workers"],
                "description": "what percent_complete and the ETA count: tasks when a "
                "total is known, else workers",
            },
            "finished_at": nullable(TIME),
            "duration_seconds": nullable(COUNT),
            "interruptions": nullable(COUNT),
            "cost": ref("ArrayCost"),
        },
        {"launch_failures": ref("ArrayLaunchFailures")},
    ),
    "ArrayLaunchFailures": {
        **obj(
            {
                "total": COUNT,
                "by_code": COUNTS_BY,
                "by_type_zone": {
                    "type": "array",
                    "items": obj(
                        {
                            "instance_type": TEXT,
                            "availability_zone": TEXT,
                            "code": TEXT,
                            "count": COUNT,
                        }
                    ),
                },
                "last": nullable(obj({"at": TIME, "code": TEXT, "message": TEXT})),
            }
        ),
        "description": "failed launch calls attributed to the array by its spawn tag "
        "(SPEC §15); codes without CloudTrail's Client./Server. prefix",
    },
    "Tasks": obj(
        {
            "completed": COUNT,
            "total": nullable(COUNT),
            "percent": nullable(PERCENT),
            "total_estimated": {
                "type": "boolean",
                "description": "part of total is the mean declared total x workers "
                "that have not declared one",
            },
        }
    ),
    "ArrayPage": obj(
        {"arrays": {"type": "array", "items": ref("ArrayProgress")}, "next": ref("Cursor")}
    ),
    "HistoryPoint": obj(
        {
            "time": TIME,
            "total": COUNT,
            "completed": COUNT,
            "failed": COUNT,
            "running": COUNT,
            "lost": nullable(COUNT),
            "tasks_completed": nullable(COUNT),
            "tasks_total": nullable(COUNT),
        }
    ),
    "History": obj(
        {"array_id": ref("ArrayId"), "points": {"type": "array", "items": ref("HistoryPoint")}}
    ),
    "CapacityEntry": obj(
        {
            "instance_type": TEXT,
            "availability_zone": TEXT,
            "instance_hours": {"type": "number", "minimum": 0},
            "interruptions": COUNT,
            "interruptions_per_100h": nullable({"type": "number", "minimum": 0}),
            "launch_failures": COUNTS_BY,
        }
    ),
    "Capacity": obj({"capacity": {"type": "array", "items": ref("CapacityEntry")}}),
    # SPEC §16: a worker's log lines, and an array's error lines counted per worker.
    "LogPage": obj(
        {
            "lines": {"type": "array", "items": obj({"at": TIME, "message": TEXT})},
            "next": ref("Cursor"),
            "status": nullable({"type": "string", "enum": list(WORKER_STATUSES)}),
        },
        {"truncated": {"const": True, "description": "the call budget ran out mid-scan"}},
    ),
    "ErrorList": obj(
        {
            "errors": {
                "type": "array",
                "items": obj(
                    {
                        "task_index": COUNT,
                        "instance_id": TEXT,
                        "count": COUNT,
                        "last_message": TEXT,
                    }
                ),
            },
            "workers_with_errors": COUNT,
            "scanned": obj({"from": TIME, "to": TIME, "complete": {"type": "boolean"}}),
        }
    ),
}

PARAMETERS: dict[str, Any] = {
    "ArrayId": {
        "name": "array_id",
        "in": "path",
        "required": True,
        "description": "spawn's `spawn:job-array-id`, e.g. render-20260127-a1b2c3",
        "schema": ref("ArrayId"),
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "description": f"items per page, default {LIMIT_DEFAULT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
    },
    "AlertsLimit": {
        "name": "limit",
        "in": "query",
        "description": f"entries, default {ALERTS_LIMIT_DEFAULT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": "the `next` of the previous page (opaque, bound to route and filters)",
        "schema": {"type": "string", "minLength": 1},
    },
    "Status": {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": list(WORKER_STATUSES)},
    },
    "AlertKind": {
        "name": "kind",
        "in": "query",
        "description": "`alarm` (alarm state changes) or `system` (alerts this system sent)",
        "schema": {"type": "string", "enum": list(KINDS)},
    },
    "AlertEventType": {
        "name": "event_type",
        "in": "query",
        "description": "only alerts sent of this type (contract §8)",
        "schema": {"type": "string", "enum": sorted(EVENT_TYPES)},
    },
    "AlertArrayId": {
        "name": "array_id",
        "in": "query",
        "description": "only entries of this array",
        "schema": ref("ArrayId"),
    },
    "AlertSeverity": {
        "name": "severity",
        "in": "query",
        "schema": {"type": "string", "enum": sorted(SEVERITIES)},
    },
    "InstanceType": {
        "name": "instance_type",
        "in": "query",
        "description": "only this EC2 instance type, e.g. c5.xlarge",
        "schema": {"type": "string", "pattern": INSTANCE_TYPE.pattern},
    },
    "Region": {
        "name": "region",
        "in": "query",
        "description": "only zones of this region, e.g. us-east-1",
        "schema": {"type": "string", "pattern": REGION.pattern},
    },
    "Since": {
        "name": "since",
        "in": "query",
        "description": "only points at or after this time (ISO-8601 UTC)",
        "schema": TIME,
    },
    "TaskIndex": {
        "name": "task_index",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    },
    "LogLimit": {
        "name": "limit",
        "in": "query",
        "description": f"lines, default {log_bounds.LOG_LIMIT_DEFAULT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": log_bounds.LOG_LIMIT_MAX},
    },
    "ErrorsLimit": {
        "name": "limit",
        "in": "query",
        "description": f"workers, default {log_bounds.ERRORS_LIMIT_DEFAULT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": log_bounds.ERRORS_LIMIT_MAX},
    },
    "LogSince": {
        "name": "since",
        "in": "query",
        "description": "lines at or after this time (ISO-8601 UTC), at most "
        f"{log_bounds.WINDOW_MAX_DAYS} days ago (the default of a tail); a grep and "
        f"errors default to {log_bounds.WINDOW_DEFAULT_HOURS} h",
        "schema": TIME,
    },
    "Grep": {
        "name": "grep",
        "in": "query",
        "description": "only lines containing this exact text (case-sensitive)",
        "schema": {"type": "string", "maxLength": log_bounds.GREP_MAX, "pattern": r'^[^"\\]+$'},
    },
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BAD_REQUEST = _json("malformed id or parameter", ref("Error"))
NOT_FOUND = _json("unknown array", ref("Error"))
FORBIDDEN = _json("missing or rejected SigV4 signature (deployed stages)", ref("GatewayError"))


def _operation(
    summary: str,
    ok: dict[str, Any],
    parameters: tuple[str, ...] = (),
    signed: bool = True,
    array: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(summary, ok)}
    if parameters:
        responses["400"] = BAD_REQUEST
    if array:
        responses["404"] = NOT_FOUND
    if signed:
        responses["403"] = FORBIDDEN
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in parameters]
    operation["security"] = [{"sigv4": []}] if signed else []
    return operation


PATHS: dict[str, dict[str, Any]] = {
    "/health": {"get": _operation("Liveness", ref("Health"), signed=False)},
    "/openapi.json": {
        "get": _operation("This document", {"type": "object"}, signed=False),
    },
    "/fleet": {"get": _operation("Fleet health snapshot", ref("Fleet"))},
    "/alerts": {
        "get": _operation(
            "Alarm state changes and alerts sent, newest first",
            ref("AlertList"),
            ("AlertsLimit", "AlertKind", "AlertEventType", "AlertArrayId", "AlertSeverity"),
        )
    },
    "/arrays": {
        "get": _operation("Progress of every array, a page", ref("ArrayPage"), ("Limit", "Cursor"))
    },
    "/arrays/{array_id}/progress": {
        "get": _operation("One array's progress", ref("ArrayProgress"), ("ArrayId",), array=True)
    },
    "/arrays/{array_id}/workers": {
        "get": _operation(
            "One array's worker rows, a page",
            ref("WorkerPage"),
            ("ArrayId", "Status", "Limit", "Cursor"),
            array=True,
        )
    },
    "/arrays/{array_id}/history": {
        "get": _operation(
            "One array's counts over time", ref("History"), ("ArrayId", "Since"), array=True
        )
    },
    "/capacity": {
        "get": _operation(
            "Instance-hours, interruptions and launch failures by type and zone, 7 days",
            ref("Capacity"),
            ("InstanceType", "Region"),
        )
    },
    "/arrays/{array_id}/workers/{task_index}/logs": {
        "get": _operation(
            "One worker's newest log lines, a page (oldest first within it)",
            ref("LogPage"),
            ("ArrayId", "TaskIndex", "LogLimit", "LogSince", "Grep", "Cursor"),
            array=True,
        )
    },
    "/arrays/{array_id}/errors": {
        "get": _operation(
            "Error lines per worker of one array",
            ref("ErrorList"),
            ("ArrayId", "ErrorsLimit", "LogSince"),
            array=True,
        )
    },
}
# The figures are fleet-wide: a caller who is not a fleet-wide reader gets the API's 403.
PATHS["/capacity"]["get"]["responses"]["403"] = _json(
    "missing or rejected SigV4 signature, or not a fleet-wide reader",
    {"anyOf": [ref("GatewayError"), ref("Error")]},
)


def open_paths() -> frozenset[str]:
    """The paths served without IAM auth in deployed stages (SPEC §7)."""
    return frozenset(
        path
        for path, operations in PATHS.items()
        if all(operation["security"] == [] for operation in operations.values())
    )


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once; callers must not modify it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spawn-fleet-monitor",
            "version": VERSION,
            "description": (
                "Monitoring of fleets launched with spawn. JSON in, JSON out; times are "
                "ISO-8601 UTC ending in Z. Deployed stages require AWS IAM (SigV4, service "
                "execute-api) on every route but /health and /openapi.json."
            ),
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (service execute-api)",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }
