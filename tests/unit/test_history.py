"""Array history compaction: bounded per array whatever its age, newest point kept."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.progress.history import (
    ARCHIVE_MAX,
    ARCHIVE_TIERS,
    DAY,
    HOUR,
    RECENT_MAX,
    RECENT_TIERS,
    Point,
    compact,
    decode,
    encode,
    merged,
    point_of,
)

T0 = 1_769_508_000  # 2026-01-27T10:00:00Z


def point(t: int, done: int = 0) -> Point:
    return Point(t, 100, done, 0, 100 - done, 0)


def test_recent_tier_keeps_one_point_per_10_s_then_per_minute() -> None:
    points = [point(T0 + s, s) for s in range(0, 2 * HOUR, 2)]  # a tick every 2 s
    now = T0 + 2 * HOUR
    kept = compact(points, now, RECENT_TIERS)
    young = [p for p in kept if now - p.t <= HOUR]
    old = [p for p in kept if now - p.t > HOUR]
    assert (len(young), len(old)) == (HOUR // 10, HOUR // 60)
    # The newest point of each slot wins, so the very last point survives.
    assert kept[-1] == points[-1]
    assert all(b.t - a.t >= 10 for a, b in itertools.pairwise(kept))


def test_archive_is_coarser_with_age_and_drops_what_is_older_than_30_days() -> None:
    now = T0 + 40 * DAY
    points = [point(t) for t in range(T0, now, 60)]  # one a minute for 40 days
    kept = compact(points, now, ARCHIVE_TIERS)
    ages = [now - p.t for p in kept]
    assert min(ages) == 60  # the newest point
    assert max(ages) <= 30 * DAY
    by_tier = [
        sum(1 for a in ages if a <= DAY),
        sum(1 for a in ages if DAY < a <= 7 * DAY),
        sum(1 for a in ages if a > 7 * DAY),
    ]
    assert by_tier == [DAY // 60, 6 * DAY // 600, 23 * DAY // HOUR]
    assert len(kept) == ARCHIVE_MAX


@given(st.lists(st.integers(min_value=-DAY, max_value=40 * DAY), max_size=400))
def test_compaction_is_idempotent_and_never_invents_points(offsets: list[int]) -> None:
    now = T0 + 40 * DAY
    points = [point(T0 + o, i) for i, o in enumerate(offsets)]
    once = compact(points, now, ARCHIVE_TIERS)
    assert compact(once, now, ARCHIVE_TIERS) == once
    assert set(once) <= set(points)
    assert once == sorted(once)


def test_the_largest_history_fits_a_dynamodb_item() -> None:
    # Worst case: every slot filled, every count as large as a real array could be.
    big = 10**9
    points = [Point(T0 + i, big, big, big, big, big) for i in range(RECENT_MAX + ARCHIVE_MAX)]
    assert len(encode(points).encode()) + 100 < 400 * 1024


def test_merged_points_are_one_per_second_in_time_order() -> None:
    a = [point(T0), point(T0 + 60, 1)]
    b = [point(T0 + 60, 1), point(T0 + 30, 2)]
    assert [p.t for p in merged(a, b)] == [T0, T0 + 30, T0 + 60]


def test_decode_skips_garbage_and_keeps_good_points() -> None:
    good = [T0, 10, 1, 2, 3, None]
    text = json.dumps([good, ["x"], [1, 2], "nope", [T0 + 60, 10, 2, 2, 2, 1]])
    assert decode(text) == [Point(T0, 10, 1, 2, 3, None), Point(T0 + 60, 10, 2, 2, 2, 1)]
    assert decode("not json") == []
    assert decode(encode(decode(text))) == decode(text)


def test_to_json_has_the_api_shape() -> None:
    body = Point(T0, 10, 4, 1, 5, None).to_json()
    assert body == {
        "time": "2026-01-27T10:00:00Z",
        "total": 10,
        "completed": 4,
        "failed": 1,
        "running": 5,
        "lost": None,
        "tasks_completed": None,
        "tasks_total": None,
    }


def test_shuffled_input_compacts_the_same() -> None:
    points = [point(T0 + s, s) for s in range(0, 3 * HOUR, 7)]
    shuffled = points[:]
    random.Random(4).shuffle(shuffled)
    now = T0 + 3 * HOUR
    assert compact(shuffled, now, RECENT_TIERS) == compact(points, now, RECENT_TIERS)


def test_points_carry_task_counts_and_old_points_read_without_them() -> None:
    view = {
        "array_id": "a",
        "workers": {"total": 4, "completed": 0, "failed": 0, "running": 1, "lost": 0},
        "tasks": {"completed": 40, "total": 400},
    }
    point = point_of(view, datetime.fromtimestamp(T0, tz=UTC))
    assert (point.tasks_completed, point.tasks_total) == (40, 400)
    assert point.to_json()["tasks_total"] == 400
    assert decode(encode([point])) == [point]
    old = decode(json.dumps([[T0, 10, 1, 2, 3, None]]))
    assert (old[0].tasks_completed, old[0].tasks_total) == (None, None)
