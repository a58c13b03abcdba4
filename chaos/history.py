"""A realistic fleet history from a seed (pure: no AWS, no clock).

The history is what happens in the world, in time order: spawn launches job arrays,
EC2 runs, stops, starts and terminates their instances, spot capacity is reclaimed
(after a rebalance recommendation, sometimes) with warnings that EC2 may send two or
three times, workers write their progress rows (a few of them garbage), and CloudWatch
notifies alarm state changes. Members are named by (array, index): the replay learns
their instance ids when it launches them.

Every member follows one script, drawn from the seed:

    launch ─ running ─ rows … ─ final row ─ terminate          (most)
                      └ rows … (still running at the end)        (KEEP_RUNNING)
                      └ stop ─ start ─ rows … ─ final row …     (STOP_START)
                      └ [rebalance] ─ warning x1-3 ─ terminate  (spot, INTERRUPTED)
                      └ [rebalance] ─ warning x1-3 ─ stop ─ start ─ rows …

Example:
    >>> history = generate(seed=7, instances=300)
    >>> sum(a.size for a in history.arrays) >= 300
    True
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Shares of members, drawn per member.
KEEP_RUNNING = 0.15
STOP_START = 0.03
INTERRUPTED = 0.10  # of spot members
INTERRUPT_BY_STOP = 0.2  # of interrupted members: the warning says stop, not terminate
REBALANCE_FIRST = 0.5  # of interrupted members
FAILED = 0.12  # of members that finish
OPTED_OUT = 0.02  # tagged spawn:monitoring=off
ALARMING = 0.04  # a status check goes to ALARM, then back to OK
GARBAGE_ROW = 0.02  # of row writes
# EC2 warns two minutes before it interrupts.
NOTICE_SECONDS = 120
ARRAY_NAMES = ("render", "train", "sim", "etl", "sweep", "align", "encode", "bench")


@dataclass(frozen=True)
class ArraySpec:
    """One job array as spawn launches it."""

    array_id: str
    name: str
    size: int
    spot: bool
    instance_type: str
    owner: str
    opted_out: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Step:
    """One thing that happens in the world.

    Attributes:
        at: seconds after the history's start.
        kind: `launch` (the member's instance is created: EC2 sends `pending`),
            `running`, `stop`, `start`, `terminate`, `warning` (one copy EC2 sends;
            `data`: action, copy), `rebalance`, `row` (`data`: the worker's row values,
            or `garbage`), `alarm` (`data`: check, state, old).
        array: the array id.
        index: the member's index in the array.
    """

    at: float
    kind: str
    array: str
    index: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class History:
    seed: int
    arrays: tuple[ArraySpec, ...]
    steps: tuple[Step, ...]
    horizon: float

    def managed(self, array_id: str, index: int) -> bool:
        spec = next(a for a in self.arrays if a.array_id == array_id)
        return index not in spec.opted_out


def generate(seed: int, instances: int = 1000, horizon: float = 2 * 3600) -> History:
    """A history of at least `instances` instances in several arrays, within `horizon`
    seconds (launches in its first third, so most members end before it)."""
    rng = random.Random(seed)
    arrays: list[ArraySpec] = []
    steps: list[Step] = []
    total = 0
    n = 0
    while total < instances:
        size = min(max(20, instances - total), rng.randint(instances // 6, instances // 3 + 20))
        spot = n % 3 != 2  # most arrays are spot, some on-demand
        name = ARRAY_NAMES[n % len(ARRAY_NAMES)]
        array_id = f"{name}-20260127-{rng.getrandbits(24):06x}"
        opted_out = frozenset(i for i in range(size) if rng.random() < OPTED_OUT)
        spec = ArraySpec(
            array_id=array_id,
            name=name,
            size=size,
            spot=spot,
            instance_type=rng.choice(("c5.xlarge", "g4dn.xlarge", "m5.large")),
            owner=f"arn:aws:iam::123456789012:user/user{n % 3}",
            opted_out=opted_out,
        )
        arrays.append(spec)
        launch = rng.uniform(0, horizon / 3)
        for index in range(size):
            steps.extend(_member(rng, spec, index, launch + rng.uniform(0, 30), horizon))
        total += size
        n += 1
    steps.sort(key=lambda s: (s.at, s.array, s.index))
    return History(seed, tuple(arrays), tuple(steps), horizon)


def _member(
    rng: random.Random, spec: ArraySpec, index: int, launch: float, horizon: float
) -> list[Step]:
    def step(at: float, kind: str, **data: Any) -> Step:
        return Step(at, kind, spec.array_id, index, data)

    out = [step(launch, "launch")]
    running = launch + rng.uniform(15, 60)
    out.append(step(running, "running"))
    duration = rng.uniform(600, 1800)
    end = running + duration
    keep = rng.random() < KEEP_RUNNING
    interrupted_at = None
    if spec.spot and rng.random() < INTERRUPTED:
        interrupted_at = running + rng.uniform(60, duration * 0.9)
    stop_start = interrupted_at is None and not keep and rng.random() < STOP_START
    tasks_total = rng.randint(50, 200)
    # The worker's rows: a first one shortly after boot, then every few minutes.
    work_until = end if not keep else horizon - 1
    row_times = []
    t = running + rng.uniform(20, 40)
    while t < work_until:
        row_times.append(t)
        t += rng.uniform(240, 600)
    paused: tuple[float, float] | None = None
    if stop_start:
        stop = running + rng.uniform(120, duration * 0.7)
        paused = (stop, stop + rng.uniform(60, 300))
        out += [step(paused[0], "stop"), step(paused[1], "start")]
    final = None if keep else rng.choices(("completed", "failed"), (1 - FAILED, FAILED))[0]
    if interrupted_at is not None:
        action = "stop" if rng.random() < INTERRUPT_BY_STOP else "terminate"
        if rng.random() < REBALANCE_FIRST:
            out.append(step(interrupted_at - rng.uniform(20, 90), "rebalance"))
        copies = rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]
        for copy in range(copies):
            delay = 0.0 if copy == 0 else rng.uniform(1, 100)
            out.append(step(interrupted_at + delay, "warning", action=action, copy=copy))
        ends = interrupted_at + NOTICE_SECONDS
        if action == "terminate":
            out.append(step(ends, "terminate"))
            # The worker is gone mid-task: its row says running for ever (a lost worker).
            row_times = [t for t in row_times if t < interrupted_at]
            final = None
        else:
            paused = (ends, ends + rng.uniform(120, 600))
            out += [step(paused[0], "stop"), step(paused[1], "start")]
    if paused is not None:
        row_times = [t for t in row_times if not paused[0] - 5 <= t <= paused[1] + 30]
    for n, at in enumerate(row_times):
        if at >= horizon:
            break
        done = int(tasks_total * (n + 1) / (len(row_times) + 1))
        out.append(_row(rng, step, at, "running", done, tasks_total))
    if final is not None and end + 10 < horizon:
        done = tasks_total if final == "completed" else rng.randint(0, tasks_total - 1)
        out.append(_row(rng, step, end, final, done, tasks_total))
        out.append(step(end + rng.uniform(5, 30), "terminate"))
    if rng.random() < ALARMING:
        alarm = running + rng.uniform(60, 300)
        out.append(step(alarm, "alarm", check="status", state="ALARM", old="OK"))
        out.append(step(alarm + rng.uniform(60, 300), "alarm", check="status", state="OK"))
    return [s for s in out if s.at < horizon]


def _row(
    rng: random.Random, step: Any, at: float, status: str, done: int, tasks_total: int
) -> Step:
    row: dict[str, Any] = {"status": status, "tasks_completed": done, "tasks_total": tasks_total}
    if rng.random() < GARBAGE_ROW:
        garbage = rng.choice(
            (
                {"status": "exploded"},
                {"tasks_completed": -3},
                {"tasks_completed": "many"},
                {"last_update": "yesterday"},
            )
        )
        return step(at, "row", values={**row, **garbage}, garbage=True)  # type: ignore[no-any-return]
    return step(at, "row", values=row, garbage=False)  # type: ignore[no-any-return]
