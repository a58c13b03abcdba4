"""What must hold once a replay settled (issue 14), checked on what moto holds. Pure:
`chaos.replay.observe` reads moto into an `Observed`; `check` judges it.

1. alarms: the `spawn-instance-*` alarms are exactly those of the running managed
   instances (EC2's own listing, with SPEC §2's tag rule applied here); in
   `ALARM_MODE=fleet-query`, both query alarms exist and no per-instance alarm is left;
2. interruptions: each array's count, and the fleet's, equals the distinct managed
   instances whose spot warning was delivered;
3. summaries: each array's summary counts equal a full recount of its rows, and the
   table holds every row the workers wrote;
4. events: every event that survived delivery was processed (its effect is in moto:
   the registry, the alert history, the summary's stream watermark) or sits in a
   failure queue with a reason; `items lost` counts the rest and must be 0;
5. malformed: each delivery of a malformed input produced exactly one logged error, and
   no well-formed one did;
6. alerts: no alert was sent twice for one episode (a spot interruption of an instance,
   an array finishing, an array failing), and every interruption was alerted. SNS
   `Publish` is not idempotent on a standard topic, so a handler that dies right after
   it, before recording that it sent the alert, sends it again when retried: alerting
   is at least once. Such resends (at most one per crash right after `Publish`) are
   counted and shown apart; any other second alert is a violation;
7. array history: every array with a summary has a history whose points are in time
   order, none after the end of the replay, and none counting more workers than the
   array has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The log lines that reject an input (each handler's own wording).
REJECTIONS = (
    "dropping malformed state-change message",
    "skipping unusable stream record",
    "skipping stream record without images",
    "skipping a message that is not an alarm notification",
    "malformed warning",
    "malformed rebalance",
)
# An alert's episode: what it is about, for the kinds sent once per episode.
ONCE_PER = {
    "spot_interruption": "instance_id",
    "array_finished": "array_id",
    "array_failing": "array_id",
}


@dataclass
class Observed:
    """moto's state after settling, and the replay's ledger, as plain data."""

    alarmed: set[str]
    running_managed: set[str]
    interruptions_by_array: dict[str, int]
    interruptions_total: int
    interrupted_by_array: dict[str, set[str]]
    summary_counts: dict[str, dict[str, int]]
    recount_counts: dict[str, dict[str, int]]
    rows_in_table: dict[str, int]
    rows_written: dict[str, int]
    delivered: set[str]
    processed: set[str]
    destination: dict[str, str]  # origin → reason
    malformed_handed: Mapping[str, int]
    logged: list[tuple[str, str | None, str | None]]  # (message, input key, invocation)
    alerts: list[dict[str, Any]]
    crashes_after_publish: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    alarm_mode: str = "per-instance"
    query_alarms: set[str] = field(default_factory=set)  # those that exist
    query_alarms_wanted: set[str] = field(default_factory=set)
    # array id → its history's points as (t, total, completed + failed + running + lost)
    history: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    ended_at: int = 0  # epoch seconds


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figures: str


def check(seen: Observed) -> list[Check]:
    return [
        _alarms(seen),
        _interruptions(seen),
        _summaries(seen),
        _events(seen),
        _malformed(seen),
        _alerts(seen),
        _history(seen),
    ]


def _sample(items: set[str] | list[str], n: int = 5) -> str:
    shown = sorted(items)[:n]
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(shown) + more


def _alarms(seen: Observed) -> Check:
    if seen.alarm_mode == "fleet-query":
        return _query_alarms(seen)
    leaked = seen.alarmed - seen.running_managed
    missing = seen.running_managed - seen.alarmed
    figures = (
        f"{len(seen.running_managed)} running managed instances, alarms on "
        f"{len(seen.alarmed)}; leaked {len(leaked)}, missing {len(missing)}"
    )
    if leaked:
        figures += f"; leaked: {_sample(leaked)}"
    if missing:
        figures += f"; missing: {_sample(missing)}"
    return Check("alarm set = running managed instances", not leaked and not missing, figures)


def _query_alarms(seen: Observed) -> Check:
    absent = seen.query_alarms_wanted - seen.query_alarms
    figures = (
        f"{len(seen.running_managed)} running managed instances; query alarms "
        f"{len(seen.query_alarms)}/{len(seen.query_alarms_wanted)}; per-instance alarms "
        f"left on {len(seen.alarmed)}"
    )
    if absent:
        figures += f"; absent: {_sample(absent)}"
    if seen.alarmed:
        figures += f"; left: {_sample(seen.alarmed)}"
    ok = bool(seen.query_alarms_wanted) and not absent and not seen.alarmed
    return Check("fleet-query: both query alarms, no per-instance alarm", ok, figures)


def _history(seen: Observed) -> Check:
    wrong = []
    for array_id in sorted(seen.summary_counts):
        points = seen.history.get(array_id, [])
        total = sum(seen.summary_counts[array_id].values())
        if not points:
            wrong.append(f"{array_id}: no history")
        elif [p[0] for p in points] != sorted(p[0] for p in points):
            wrong.append(f"{array_id}: points out of order")
        elif points[-1][0] > seen.ended_at:
            wrong.append(f"{array_id}: a point after the end")
        elif any(counted > max(size, total) for _, size, counted in points):
            wrong.append(f"{array_id}: a point counting more workers than the array has")
    figures = f"{len(seen.history)} arrays with history / {len(seen.summary_counts)} summarised"
    if wrong:
        figures += "; " + "; ".join(wrong[:5])
    return Check("each summarised array has a consistent history", not wrong, figures)


def _interruptions(seen: Observed) -> Check:
    wrong = []
    arrays = set(seen.interrupted_by_array) | set(seen.interruptions_by_array)
    for array_id in sorted(arrays):
        want = len(seen.interrupted_by_array.get(array_id, set()))
        got = seen.interruptions_by_array.get(array_id, 0)
        if want != got:
            wrong.append(f"{array_id}: {got} counted, {want} interrupted")
    want_total = sum(len(ids) for ids in seen.interrupted_by_array.values())
    if seen.interruptions_total != want_total:
        wrong.append(f"fleet: {seen.interruptions_total} counted, {want_total} interrupted")
    figures = (
        f"fleet {seen.interruptions_total} counted / {want_total} distinct interrupted; "
        f"{len(arrays)} arrays"
    )
    if wrong:
        figures += "; " + "; ".join(wrong)
    return Check("interruption counts = distinct interrupted instances", not wrong, figures)


def _summaries(seen: Observed) -> Check:
    drift = [
        f"{a}: summary {seen.summary_counts.get(a)} vs recount {seen.recount_counts[a]}"
        for a in sorted(seen.recount_counts)
        if seen.summary_counts.get(a) != seen.recount_counts[a]
    ]
    missing_rows = {
        a: n - seen.rows_in_table.get(a, 0)
        for a, n in seen.rows_written.items()
        if seen.rows_in_table.get(a, 0) != n
    }
    rows = sum(seen.rows_in_table.values())
    figures = f"{len(seen.recount_counts)} arrays, {rows} rows; drifted {len(drift)}"
    if missing_rows:
        figures += f"; rows missing from the table: {missing_rows}"
    if drift:
        figures += "; " + "; ".join(drift[:3])
    return Check("each array summary = full recount", not drift and not missing_rows, figures)


def items_lost(seen: Observed) -> set[str]:
    return seen.delivered - seen.processed - set(seen.destination)


def _events(seen: Observed) -> Check:
    lost = items_lost(seen)
    no_reason = [o for o, reason in seen.destination.items() if not reason]
    figures = (
        f"{len(seen.delivered)} events delivered: {len(seen.delivered & seen.processed)} "
        f"processed, {len(seen.destination)} in a failure queue; items lost {len(lost)}"
    )
    if lost:
        figures += f": {_sample(lost)}"
    if no_reason:
        figures += f"; {len(no_reason)} without a reason"
    return Check("every delivered event processed or kept with a reason", not lost, figures)


def _malformed(seen: Observed) -> Check:
    per_key: Counter[str] = Counter()
    stray = 0
    for message, key, invocation in seen.logged:
        if not message.startswith(REJECTIONS):
            continue
        owner = key if key in seen.malformed_handed else invocation
        if owner is not None and owner in seen.malformed_handed:
            per_key[owner] += 1
        else:
            stray += 1
    wrong = {k: per_key[k] for k, n in seen.malformed_handed.items() if per_key[k] != n}
    handed = sum(seen.malformed_handed.values())
    figures = (
        f"{len(seen.malformed_handed)} malformed inputs, handed over {handed} times, "
        f"{sum(per_key.values())} rejections logged; wrong count {len(wrong)}, "
        f"rejections of well-formed input {stray}"
    )
    if wrong:
        figures += f": {dict(list(wrong.items())[:5])}"
    return Check("each malformed input: exactly one logged error", not wrong and not stray, figures)


def _alerts(seen: Observed) -> Check:
    episodes: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter(a.get("event_type", "?") for a in seen.alerts)
    for alert in seen.alerts:
        kind = alert.get("event_type")
        if kind in ONCE_PER:
            about = alert.get(ONCE_PER[kind]) or alert.get("details", {}).get(ONCE_PER[kind])
            episodes[(kind, str(about))] += 1
    twice = {f"{k} {a}": n for (k, a), n in episodes.items() if n > 1}
    extra = sum(n - 1 for n in twice.values())
    resent = min(extra, seen.crashes_after_publish)
    interrupted = {i for ids in seen.interrupted_by_array.values() for i in ids}
    alerted = {a for (k, a) in episodes if k == "spot_interruption"}
    unalerted = interrupted - alerted
    figures = (
        f"{len(seen.alerts)} alerts ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}); "
        f"sent twice {extra - resent} (resent after a crash right after Publish: {resent}); "
        f"interruptions not alerted {len(unalerted)}"
    )
    if twice:
        figures += f": {dict(list(twice.items())[:5])}"
    if unalerted:
        figures += f"; not alerted: {_sample(unalerted)}"
    ok = extra == resent and not unalerted
    return Check("no alert sent twice for one episode", ok, figures)


def report(seed: int, seen: Observed, checks: list[Check]) -> str:
    """The printed result: the seed, the figures of the replay, each invariant."""
    lines = [f"chaos seed {seed}"]
    for name, value in seen.figures.items():
        lines.append(f"  {name}: {value}")
    lines.append(f"  items lost: {len(items_lost(seen))}")
    for result in checks:
        lines.append(f"  [{'ok' if result.ok else 'VIOLATED'}] {result.name}: {result.figures}")
    failed = [c for c in checks if not c.ok]
    if failed:
        lines.append(f"{len(failed)} invariant(s) violated; replay with: make chaos SEED={seed}")
    else:
        lines.append("all invariants hold")
    return "\n".join(lines)
