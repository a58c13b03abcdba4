"""The bounds of every log read, and the stream names the kit writes (SPEC §16).

Streams in `/aws/spawn/workers`: `{array_id}/{task_index}/{instance_id}` per worker (the
kit's `spawn-report run`; a task retried on another instance gets another stream), or
`{instance_id}` (the CloudWatch agent's config, `chalicelib.console.logs`). Each bound
below caps one request's work whatever the logs hold. Details: docs/logs.md.
"""

from __future__ import annotations

import re

from chalicelib.contract.rows import log_stream_array

# What one request may cost: CloudWatch Logs calls, lines, bytes and time.
LOG_LIMIT_DEFAULT = 100
LOG_LIMIT_MAX = 1000
ERRORS_LIMIT_DEFAULT = 50
ERRORS_LIMIT_MAX = 100
WINDOW_DEFAULT_HOURS = 24
WINDOW_MAX_DAYS = 14
# A page of lines is at most this many bytes of messages; each line at most LINE_MAX.
PAGE_BYTES_MAX = 1_000_000
LINE_MAX = 8192
# Logs calls per request (DescribeLogStreams, GetLogEvents, FilterLogEvents together):
# enough for one call on each of STREAMS_MAX streams after the stream lookups.
LOG_CALLS_MAX = 16
ERRORS_CALLS_MAX = 20
# Bytes of error lines one /errors request reads before it stops (`complete` false).
ERRORS_BYTES_MAX = 5_000_000
# Streams of one worker read per request (kit streams of retried tasks + the agent's).
STREAMS_MAX = 10
# GetLogEvents and FilterLogEvents return at most 10,000 events per call, and at most
# 1 MB (an event: its UTF-8 message + 26 bytes; one event at most 256 KB). A page with
# fewer events than asked and room for another event is the start of the stream.
EVENTS_PER_CALL = 10_000
RESPONSE_BYTES = 1_048_576
EVENT_OVERHEAD = 26
EVENT_BYTES_MAX = 262_144
# The first grep window, growing 4x backwards until the page is full.
GREP_FIRST_WINDOW_MS = 15 * 60 * 1000
GREP_MAX = 128
# grep is sent as one quoted phrase; these could end or escape it.
GREP_FORBIDDEN = frozenset('"\\')

# An error line: what the guide's `--filter-pattern ERROR` counts, and Python's tracebacks.
ERROR_WORDS = ("ERROR", "Error", "Traceback", "Exception")
ERROR_RE = re.compile("|".join(ERROR_WORDS))
# The same, as a CloudWatch Logs regex filter pattern (alternation is supported).
ERROR_FILTER = "%" + "|".join(ERROR_WORDS) + "%"


def kit_stream_prefix(array_id: str) -> str:
    """The prefix of every kit stream of an array (a `:` in its id is written `%3A`)."""
    return f"{log_stream_array(array_id)}/"


def task_stream_prefix(array_id: str, task_index: int) -> str:
    """The prefix of the kit streams of one task (one per instance that ran it)."""
    return f"{kit_stream_prefix(array_id)}{task_index}/"


def parse_kit_stream(name: str, array_id: str) -> tuple[int, str] | None:
    """(task_index, instance_id) of a kit stream of `array_id`, else None."""
    prefix = kit_stream_prefix(array_id)
    if not name.startswith(prefix):
        return None
    index, sep, instance = name[len(prefix) :].partition("/")
    if not sep or not instance or not index.isdigit() or len(index) > 9:
        return None
    return int(index), instance


def cut(message: str, limit: int = LINE_MAX) -> str:
    """A message cut to at most `limit` UTF-8 bytes (never in the middle of a character)."""
    data = message.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return message
    return data[:limit].decode("utf-8", errors="ignore") + "…"


def grep_filter(grep: str) -> str:
    """The filter pattern for a grep text: one exact phrase (case-sensitive)."""
    return f'"{grep}"'
