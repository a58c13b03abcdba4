"""The pure parts of capacity counting: day splits and what a registry row still owes."""

from __future__ import annotations

from datetime import UTC, date, datetime

from chalicelib.fleet.capacity import accrual, region_of_zone, split_by_day
from chalicelib.fleet.events import epoch_ms


def ms(day: int, hour: int, minute: int = 0) -> int:
    return epoch_ms(datetime(2026, 1, day, hour, minute, tzinfo=UTC))


ROW = {
    "instance_id": "i-1",
    "managed": True,
    "instance_type": "c5.xlarge",
    "availability_zone": "us-east-1a",
    "running_since_ms": ms(1, 22),
}


def test_seconds_split_across_utc_days_and_a_correction_is_negative() -> None:
    assert split_by_day(ms(1, 22), ms(3, 1)) == {
        date(2026, 1, 1): 7200,
        date(2026, 1, 2): 86400,
        date(2026, 1, 3): 3600,
    }
    assert split_by_day(ms(2, 1), ms(1, 23)) == {date(2026, 1, 1): -3600, date(2026, 1, 2): -3600}
    assert split_by_day(ms(1, 1), ms(1, 1)) == {}


def test_a_running_row_owes_the_time_to_now_from_its_mark() -> None:
    due = accrual({**ROW, "state": "running"}, ms(2, 1))
    assert due is not None
    assert (due.start_ms, due.end_ms, due.seen, due.final) == (ms(1, 22), ms(2, 1), None, False)
    counted = {**ROW, "state": "running", "capacity_ms": ms(2, 1)}
    assert accrual(counted, ms(2, 1)) is None
    assert accrual(counted, ms(2, 0)) is None  # a clock behind the mark adds nothing


def test_an_ended_row_owes_up_to_its_end_even_backwards_and_then_nothing() -> None:
    ended = {**ROW, "state": "stopped", "last_event_ms": ms(2, 0), "capacity_ms": ms(2, 1)}
    due = accrual(ended, ms(3, 0))
    assert due is not None
    assert (due.start_ms, due.end_ms, due.final) == (ms(2, 1), ms(2, 0), True)
    assert accrual({**ended, "capacity_ms": ms(2, 0), "capacity_final": True}, ms(3, 0)) is None


def test_a_mark_from_an_earlier_run_does_not_count_against_this_one() -> None:
    row = {**ROW, "state": "running", "capacity_ms": ms(1, 10), "capacity_final": True}
    due = accrual(row, ms(1, 23))
    assert due is not None
    assert (due.start_ms, due.end_ms) == (ms(1, 22), ms(1, 23))


def test_rows_that_cannot_count() -> None:
    for row in (
        {**ROW, "state": "running", "managed": False},
        {**ROW, "state": "running", "availability_zone": None},
        {**ROW, "state": "pending"},
        {k: v for k, v in ROW.items() if k != "running_since_ms"} | {"state": "running"},
    ):
        assert accrual(row, ms(2, 0)) is None, row


def test_zones_of_a_region_include_local_zones_but_not_a_longer_region() -> None:
    assert region_of_zone("us-east-1a", "us-east-1")
    assert region_of_zone("us-east-1-bos-1a", "us-east-1")
    assert not region_of_zone("us-east-1a", "us-east-2")
    assert not region_of_zone("ap-southeast-1a", "ap-southeast-2")
