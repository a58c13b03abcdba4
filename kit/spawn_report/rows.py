"""The progress row and time format: the one definition workers and backend share.

The backend sees this very file as `chalicelib/contract/rows.py` (a symbolic link), so
both sides agree on a valid row; it is standard library only and runs on Python 3.9+.
Every limit is a named constant below. A row may also carry the backend's *lost* mark,
which applies only to a `running` row on the instance it names. Details: docs/kit.md.

Example:
    >>> validate_row({"array_id": "a", "task_index": 0, "status": "running",
    ...               "tasks_completed": 3, "last_update": "2026-01-27T10:00:00Z",
    ...               "instance_id": "i-0abc", "hostname": "ip-10-0-0-1"}).tasks_completed
    3
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

STATUSES = ("running", "completed", "failed")
REQUIRED_FIELDS = (
    "array_id",
    "task_index",
    "status",
    "tasks_completed",
    "last_update",
    "instance_id",
    "hostname",
)
OPTIONAL_FIELDS = ("tasks_total", "error_count", "message", "exit_code", "signal")
# Longest texts a valid row may carry: the backend keeps recent rows in one summary item,
# which DynamoDB caps at 400 KB, so a longer value makes the row invalid instead of
# making the summary unsavable. A hostname is at most 253 characters (DNS); array ids
# are what the API accepts; instance ids leave room for container ids.
ARRAY_ID_MAX = 128
INSTANCE_ID_MAX = 128
HOSTNAME_MAX = 255
# Messages are free text and may be long; the summary keeps the first this many.
MESSAGE_MAX = 500
# Counts above this cannot be real and would not survive DynamoDB's 38-digit numbers
# once summed; a row carrying one is invalid rather than able to break every save.
NUMBER_MAX = 10**12
TIME_TEXT_MAX = 64
# `spawn-report run` records how the job ended (SPEC §16): its exit status as a shell
# gives it (0-255; 128 + n after signal n), and the signal's name when one ended it.
EXIT_CODE_MAX = 255
SIGNAL_MAX = 16
LOST_CAUSES = ("spot_interruption", "instance_ended")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def log_stream_array(array_id: str) -> str:
    """An array id as the first part of its workers' log stream names (SPEC §16).

    CloudWatch Logs refuses `:` in a stream name (and `*`, which no array id holds), and
    an array id may hold `:`; it is written `%3A`. No array id holds `%`, so two ids
    never share a stream name. Kit and backend both name streams through this.
    """
    return array_id.replace(":", "%3A")


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with a trailing `Z`, as the SPEC wants every time."""
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
    )


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware time, exactly (no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def iso_ms(milliseconds: int) -> str:
    """`iso` of a time given in epoch milliseconds."""
    return iso(datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc))


@dataclass(frozen=True)
class Row:
    """One valid worker row (SPEC §4); `last_update_ms` is epoch milliseconds."""

    array_id: str
    task_index: int
    status: str
    tasks_completed: int
    last_update_ms: int
    instance_id: str
    hostname: str
    tasks_total: int | None = None
    error_count: int | None = None
    message: str | None = None
    lost_cause: str | None = None
    exit_code: int | None = None
    signal: str | None = None

    @property
    def second(self) -> int:
        return self.last_update_ms // 1000

    @property
    def shown_status(self) -> str:
        """The status the API shows and filters on: `lost` for a lost worker."""
        return "lost" if self.lost_cause else self.status

    def to_json(self) -> dict[str, Any]:
        """The row as the API shows it (and as the summary item stores it); `exit_code`
        and `signal` only when the row has them."""
        shown = {
            "task_index": self.task_index,
            "status": self.shown_status,
            "tasks_completed": self.tasks_completed,
            "last_update": iso_ms(self.last_update_ms),
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "tasks_total": self.tasks_total,
            "error_count": self.error_count,
            "message": self.message,
            "lost_cause": self.lost_cause,
        }
        ended = {"exit_code": self.exit_code, "signal": self.signal}
        # A merge, not `.update`: the policy derivation takes any `.update` call for
        # `Registry.update` (infra/aws_calls.py matches methods by name).
        return {**shown, **{k: v for k, v in ended.items() if v is not None}}


@dataclass(frozen=True)
class Invalid:
    """A row that breaks the SPEC §4 shape, with why; keys are None when unreadable."""

    reason: str
    array_id: str | None = None
    task_index: int | None = None


def _whole(value: Any) -> int | None:
    """An integer from an int, or an integral Decimal/float; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, (Decimal, float)):
        try:
            if not math.isfinite(value) or value != int(value):
                return None
        except (OverflowError, ValueError):
            return None
        number = int(value)
    else:
        return None
    return number if -NUMBER_MAX <= number <= NUMBER_MAX else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_utc(value: Any) -> int | None:
    """Epoch milliseconds of an ISO-8601 UTC time (`Z` or `+00:00`); None otherwise."""
    if not isinstance(value, str) or len(value) > TIME_TEXT_MAX:
        return None
    # Python < 3.11 (which workers may run) reads no "Z"; the same time either way.
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.utcoffset() != timedelta(0):
        return None
    return epoch_ms(moment)


def validate_row(image: Mapping[str, Any]) -> Row | Invalid:
    """Check one row against SPEC §4. Never raises: garbage comes back as `Invalid`.

    Example:
        >>> validate_row({"array_id": "a", "task_index": Decimal(1), "status": "done"})
        Invalid(reason="status 'done' is not one of running, completed, failed", ...)
    """
    if not isinstance(image, Mapping):
        return Invalid(f"row is not a map: {_short(image)}")
    raw_array = image.get("array_id")
    array_id = raw_array if isinstance(raw_array, str) and raw_array else None
    task_index = _whole(image.get("task_index"))
    if task_index is not None and task_index < 0:
        task_index = None

    def invalid(reason: str) -> Invalid:
        return Invalid(reason, array_id, task_index)

    if array_id is None:
        return invalid(f"array_id {_short(raw_array)} is not a non-empty string")
    if len(array_id) > ARRAY_ID_MAX:
        return invalid(f"array_id is {len(array_id)} characters, more than {ARRAY_ID_MAX}")
    if task_index is None:
        return invalid(f"task_index {_short(image.get('task_index'))} is not an integer ≥ 0")
    status = image.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        return invalid(f"status {_short(status)} is not one of {', '.join(STATUSES)}")
    tasks_completed = _whole(image.get("tasks_completed"))
    if tasks_completed is None or tasks_completed < 0:
        return invalid(
            f"tasks_completed {_short(image.get('tasks_completed'))} is not an integer ≥ 0"
        )
    last_update_ms = parse_utc(image.get("last_update"))
    if last_update_ms is None:
        return invalid(f"last_update {_short(image.get('last_update'))} is not ISO-8601 UTC")
    texts: dict[str, str] = {}
    for name, longest in (("instance_id", INSTANCE_ID_MAX), ("hostname", HOSTNAME_MAX)):
        value = image.get(name)
        if not isinstance(value, str) or not value:
            return invalid(f"{name} {_short(value)} is not a non-empty string")
        if len(value) > longest:
            return invalid(f"{name} is {len(value)} characters, more than {longest}")
        texts[name] = value
    optional: dict[str, int | None] = {}
    for name in ("tasks_total", "error_count"):
        value = image.get(name)
        number = None if value is None else _whole(value)
        if value is not None and (number is None or number < 0):
            return invalid(f"{name} {_short(value)} is not an integer ≥ 0")
        optional[name] = number
    message = image.get("message")
    if message is not None and not isinstance(message, str):
        return invalid(f"message {_short(message)} is not a string")
    raw_exit = image.get("exit_code")
    exit_code = None if raw_exit is None else _whole(raw_exit)
    if raw_exit is not None and (exit_code is None or not 0 <= exit_code <= EXIT_CODE_MAX):
        return invalid(f"exit_code {_short(raw_exit)} is not an integer 0-{EXIT_CODE_MAX}")
    signal = image.get("signal")
    if signal is not None and not _signal_name(signal):
        return invalid(f"signal {_short(signal)} is not a signal name like SIGKILL")
    return Row(
        array_id=array_id,
        task_index=task_index,
        status=status,
        tasks_completed=tasks_completed,
        last_update_ms=last_update_ms,
        instance_id=texts["instance_id"],
        hostname=texts["hostname"],
        tasks_total=optional["tasks_total"],
        error_count=optional["error_count"],
        message=message,
        lost_cause=_lost_cause(image, status, texts["instance_id"]),
        exit_code=exit_code,
        signal=signal,
    )


def _signal_name(value: Any) -> bool:
    """`SIG` and capitals, digits or `+` (`SIGKILL`, `SIGRTMIN+3`), at most SIGNAL_MAX."""
    if not isinstance(value, str) or not 3 < len(value) <= SIGNAL_MAX:
        return False
    rest = value[3:]
    return (
        value.startswith("SIG")
        and rest[:1].isalpha()
        and all(c.isupper() or c.isdigit() or c == "+" for c in rest)
    )


def _lost_cause(image: Mapping[str, Any], status: str, instance_id: str) -> str | None:
    """The cause of the backend's lost mark, if it applies to this very row: a mark that
    names another instance (the task moved) or a row no longer running is ignored."""
    cause = image.get("lost_cause")
    if status != "running" or image.get("lost_instance_id") != instance_id:
        return None
    return cause if cause in LOST_CAUSES else None
