"""How `watch` and `fleet` show failed launches (SPEC §15): why members stay pending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

SHOWN_CODES = 3
MESSAGE_SHOWN = 72


def _counts(by_code: Mapping[str, Any]) -> str:
    ranked = sorted(
        ((n, code) for code, n in by_code.items() if isinstance(n, int)), key=lambda e: -e[0]
    )
    shown = [f"{n} {code}" for n, code in ranked[:SHOWN_CODES]]
    if len(ranked) > SHOWN_CODES:
        shown.append(f"+{len(ranked) - SHOWN_CODES} more")
    return ", ".join(shown)


def array_line(progress: Mapping[str, Any]) -> Text | None:
    """The line under an array's pending count, or None when no launch failed."""
    failures = progress.get("launch_failures")
    if not isinstance(failures, Mapping) or not failures.get("total"):
        return None
    line = Text("launch failures ", style="red").append(str(failures["total"]))
    line.append(f"  ({_counts(failures.get('by_code') or {})})")
    where = failures.get("by_type_zone") or []
    if where and isinstance(where[0], Mapping):
        top = where[0]
        line.append(
            f"\n  most: {top.get('instance_type')} {top.get('availability_zone')}, "
            f"{top.get('count')} {top.get('code')}",
            style="grey50",
        )
    last = failures.get("last")
    if isinstance(last, Mapping) and last.get("message"):
        message = str(last["message"])
        if len(message) > MESSAGE_SHOWN:
            message = message[: MESSAGE_SHOWN - 3].rstrip() + "..."
        line.append(f"\n  last: {last.get('code')}: {message}", style="grey50")
    return line


def fleet_row(fleet: Mapping[str, Any]) -> Text:
    """`fleet`'s launch failures row: by code, last hour and last 24 h."""
    failures = fleet.get("launch_failures") or {}
    hour = _counts(failures.get("last_hour") or {}) or "none"
    day = _counts(failures.get("last_24h") or {}) or "none"
    return Text(f"last hour: {hour}; last 24 h: {day}")
