"""Where notices go: the destinations in the notify secret, and which notices each takes.

The secret (`NOTIFY_SECRET_ID`) holds `{"destinations": [...]}` (SPEC §17). Each entry is
checked on its own: a bad one is skipped with a logged reason that names its position and
name, never its URL, and the good ones still work. The value is cached for 60 s
(Powertools' cache), so a change takes effect within a minute without a cold start; a
missing or unreadable secret means no destinations, said once per read.

    >>> book = DestinationBook(clients.secret, "spawn-fleet-monitor/notify")
    >>> [d.name for d in book.matching(notice)]
    ['ops-slack']
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from chalicelib.notify.model import (
    DESTINATION_KINDS,
    SEVERITY_ORDER,
    Destination,
    DestinationKind,
    Notice,
)

logger = logging.getLogger(__name__)

# SPEC §17: a new value takes effect within a minute.
SECRET_MAX_AGE_SECONDS = 60
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Plain HTTP only to this machine (the local stack's receiver); anything else is HTTPS.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FIELDS = frozenset(
    {"name", "kind", "url", "signing_key", "event_types", "min_severity", "array_name", "owner"}
)


class BadDestination(ValueError):
    """One entry of the secret is unusable; the text says why (never the URL)."""


def parse_destinations(text: str) -> tuple[list[Destination], list[str]]:
    """The destinations in a secret's value, and a reason for each entry left out.

    Raises `BadDestination` only when the value as a whole is unusable (not JSON, or no
    `destinations` list)."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        raise BadDestination("the secret is not JSON") from None
    entries = document.get("destinations") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise BadDestination('the secret has no "destinations" list')
    found: list[Destination] = []
    problems: list[str] = []
    names: set[str] = set()
    for position, entry in enumerate(entries):
        label = _label(position, entry)
        try:
            destination = parse_destination(entry)
        except BadDestination as exc:
            problems.append(f"{label}: {exc}")
            continue
        if destination.name in names:
            problems.append(f"{label}: the name is used by an earlier destination")
            continue
        names.add(destination.name)
        found.append(destination)
    return found, problems


def parse_destination(entry: Any) -> Destination:
    """One entry of the secret; raises `BadDestination`."""
    if not isinstance(entry, Mapping):
        raise BadDestination("not a JSON object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise BadDestination(f"unknown fields {', '.join(map(str, unknown))[:120]}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadDestination("name must be 1-64 letters, digits, '_', '.' or '-'")
    kind = entry.get("kind")
    if kind not in DESTINATION_KINDS:
        raise BadDestination("kind must be one of " + ", ".join(DESTINATION_KINDS))
    url = entry.get("url")
    if not isinstance(url, str) or not _usable_url(url):
        raise BadDestination("url must be an https:// URL (http:// only to this machine)")
    signing_key = entry.get("signing_key")
    if kind == "webhook":
        if not isinstance(signing_key, str) or len(signing_key) < 16:
            raise BadDestination("a webhook needs a signing_key of at least 16 characters")
    elif signing_key is not None:
        raise BadDestination("signing_key is for kind webhook only")
    event_types = entry.get("event_types")
    if event_types is not None and (
        not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types)
    ):
        raise BadDestination("event_types must be a list of event type names")
    min_severity = entry.get("min_severity")
    if min_severity is not None and min_severity not in SEVERITY_ORDER:
        raise BadDestination("min_severity must be one of " + ", ".join(SEVERITY_ORDER))
    for field in ("array_name", "owner"):
        value = entry.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            raise BadDestination(f"{field} must be a non-empty string")
    return Destination(
        name=name,
        kind=cast(DestinationKind, kind),
        url=url,
        signing_key=signing_key,
        event_types=frozenset(event_types) if event_types is not None else None,
        min_severity=min_severity,
        array_name=entry.get("array_name"),
        owner=entry.get("owner"),
    )


def accepts(destination: Destination, notice: Notice) -> bool:
    """Whether `destination`'s filters let `notice` through.

    An owner filter takes only notices of that owner's arrays, so a user's channel never
    receives another user's array, nor fleet-wide notices that name no owner; likewise an
    array-name filter takes only notices of arrays whose name matches."""
    if destination.event_types is not None and notice.event_type not in destination.event_types:
        return False
    if destination.min_severity is not None and SEVERITY_ORDER.get(
        notice.severity, -1
    ) < SEVERITY_ORDER.get(destination.min_severity, 0):
        return False
    if destination.owner is not None and notice.owner != destination.owner:
        return False
    return destination.array_name is None or (
        notice.array_name is not None
        and fnmatch.fnmatchcase(notice.array_name, destination.array_name)
    )


@dataclass
class DestinationBook:
    """The destinations in force, read from the notify secret.

    Args:
        read_secret: `(secret_id, max_age) -> value` (`Clients.secret`: Powertools'
            cache in front of `GetSecretValue`).
        secret_id: `NOTIFY_SECRET_ID`.
        max_age: seconds a read value is kept (default 60, the SPEC's bound).
        clock: epoch seconds, for the pause after a failed read.
    """

    read_secret: Callable[[str, int], str]
    secret_id: str
    max_age: int = SECRET_MAX_AGE_SECONDS
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._failed_until = 0.0

    def all(self) -> list[Destination]:
        """Every usable destination (none when the secret is missing or unusable)."""
        if self.clock() < self._failed_until:
            return []
        try:
            text = self.read_secret(self.secret_id, self.max_age)
        except Exception as exc:  # missing, denied, throttled: no destinations for now
            # A failed read is not cached by Powertools: wait as long as a value would be
            # kept before asking again, so a missing secret costs one call a minute.
            self._failed_until = self.clock() + self.max_age
            logger.warning(
                "notify secret not readable: no chat destinations",
                extra={"secret_id": self.secret_id, "error": type(exc).__name__},
            )
            return []
        try:
            destinations, problems = parse_destinations(text)
        except BadDestination as exc:
            logger.error(
                "notify secret unusable: no chat destinations",
                extra={"secret_id": self.secret_id, "reason": str(exc)},
            )
            return []
        for problem in problems:
            logger.error("notify destination skipped", extra={"reason": problem})
        return destinations

    def named(self, name: str) -> Destination | None:
        return next((d for d in self.all() if d.name == name), None)

    def matching(self, notice: Notice) -> list[Destination]:
        """The destinations whose filters take `notice`."""
        return [d for d in self.all() if accepts(d, notice)]


def describe_all(destinations: Sequence[Destination]) -> list[dict[str, Any]]:
    """What `notify list` shows: names, kinds and filters, never URLs or keys."""
    return [d.describe() for d in destinations]


def _usable_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname or len(url) > 2048:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)


def _label(position: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    shown = name[:64] if isinstance(name, str) and NAME.fullmatch(name) else "?"
    return f"destination #{position} ({shown})"
