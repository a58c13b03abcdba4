"""The HTTP API (SPEC §7), as a Chalice blueprint."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

api = Blueprint(__name__)


@api.route("/health", methods=["GET"])
def health() -> dict[str, Any]:
    return {"status": "ok"}
