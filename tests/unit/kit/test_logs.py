"""The job's output to CloudWatch Logs (kit/spawn_report/logs.py): PutLogEvents' limits,
the spool while the service is unreachable, and a job that is never held up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from spawn_report.logs import (
    EVENT_OVERHEAD,
    GROUP,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    MAX_SPAN_MS,
    Event,
    LogShipper,
    batches,
    event_bytes,
    rejected,
    split_line,
    stream_name,
)

from testkit.faults import count_calls, throttle

T0 = float(int(time.time()))  # PutLogEvents rejects events 14 days old
STREAM = stream_name("train-20260127-a1b2c3", 4, "i-0123456789abcdef4")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Switch:
    """A logs client that can be swapped under the shipper: the network goes down, up."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("logs", region_name="us-east-1")


def unreachable() -> Any:
    """A client whose every call fails to connect, as with the network down."""
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=0.2)
    return boto3.client(
        "logs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9", config=config
    )


def shipper(tmp_path: Path, client: Any, clock: Clock, **kwargs: Any) -> LogShipper:
    return LogShipper(
        lambda: (GROUP, STREAM),
        lambda: client,
        tmp_path / "spool",
        clock=clock,
        sleep=clock.sleep,
        start=False,
        **kwargs,
    )


def stored(logs: Any) -> list[str]:
    """Every message in the stream, oldest first (paged with the forward token)."""
    messages: list[str] = []
    token: str | None = None
    while True:
        page = logs.get_log_events(
            logGroupName=GROUP,
            logStreamName=STREAM,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        messages += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


# ---------------------------------------------------------------------- the limits (pure)


def test_the_stream_is_array_index_instance() -> None:
    assert stream_name("render-1", 7, "i-0abc") == "render-1/7/i-0abc"


def test_a_colon_in_the_array_id_never_reaches_the_stream_name() -> None:
    # CloudWatch Logs refuses `:` in stream names; array ids may hold one.
    assert stream_name("job:render-1", 7, "i-0abc") == "job%3Arender-1/7/i-0abc"


def test_a_burst_of_10001_events_makes_two_batches_of_at_most_10000() -> None:
    events = [Event(int(T0 * 1000), f"line {i}") for i in range(10_001)]

    sent = batches(events)

    assert [len(b) for b in sent] == [MAX_EVENTS, 1]
    assert [e.message for b in sent for e in b] == [e.message for e in events]


def test_more_than_a_megabyte_is_cut_where_the_next_event_would_pass_1048576_bytes() -> None:
    line = "x" * 999  # 999 + 26 bytes an event
    events = [Event(int(T0 * 1000) + i, line) for i in range(2_100)]

    sent = batches(events)

    sizes = [sum(event_bytes(e.message) for e in b) for b in sent]
    assert all(size <= MAX_BATCH_BYTES for size in sizes)
    per_batch = MAX_BATCH_BYTES // (999 + EVENT_OVERHEAD)
    assert [len(b) for b in sent] == [per_batch, per_batch, 2_100 - 2 * per_batch]


def test_a_25_hour_span_is_split_so_no_batch_spans_more_than_24_hours() -> None:
    start = int(T0 * 1000)
    events = [Event(start + minute * 60_000, f"m{minute}") for minute in range(25 * 60 + 1)]

    sent = batches(events)

    assert len(sent) == 2
    assert all(b[-1].timestamp - b[0].timestamp <= MAX_SPAN_MS for b in sent)
    assert sum(len(b) for b in sent) == len(events)


def test_an_oversized_line_is_split_between_characters_and_nothing_is_lost() -> None:
    line = "é" * 200_000 + "end"  # 400,003 UTF-8 bytes, more than one event holds

    parts = split_line(line)

    assert len(parts) == 2
    assert all(len(p.encode("utf-8")) <= MAX_EVENT_BYTES for p in parts)
    assert "".join(parts) == line
    assert [len(b) for b in batches([Event(1, line)])] == [2]


def test_out_of_order_timestamps_go_in_chronological_order_ties_as_written() -> None:
    events = [Event(30, "c"), Event(10, "a1"), Event(20, "b"), Event(10, "a2")]

    [batch] = batches(events)

    assert [e.message for e in batch] == ["a1", "a2", "b", "c"]


def test_events_the_service_rejects_as_too_old_or_too_new_are_counted() -> None:
    info = {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 8}}
    assert rejected(info, 10) == 4
    assert rejected({}, 10) == 0


# ---------------------------------------------------------------------- sending (moto)


def test_lines_reach_the_workers_stream_in_order_and_the_group_is_made_once(
    logs: Any, tmp_path: Path
) -> None:
    logs.create_log_group(logGroupName=GROUP)  # another worker made it: not an error
    clock = Clock()
    calls = count_calls(logs)
    ship = shipper(tmp_path, logs, clock)
    for i in range(30):
        clock.now += 1
        ship.write(f"line {i}")
        if i % 10 == 9:
            ship.pump()

    stats = ship.close()

    assert calls == {"CreateLogGroup": 1, "CreateLogStream": 1, "PutLogEvents": 3}
    assert stored(logs) == [f"line {i}" for i in range(30)]
    assert (stats.events_sent, stats.dropped, stats.spooled) == (30, 0, 0)
    assert stats.bytes_sent == stats.bytes_written == sum(len(f"line {i}") for i in range(30))


def test_lines_wait_for_the_interval_so_a_call_carries_5_s_of_output(
    logs: Any, tmp_path: Path
) -> None:
    clock = Clock()
    calls = count_calls(logs)
    ship = shipper(tmp_path, logs, clock)
    for i in range(60):  # a line every 0.5 s, a pump every second, for 30 s
        clock.now += 0.5
        ship.write(f"line {i}")
        if i % 2:
            ship.pump()
    assert 5 <= calls.get("PutLogEvents", 0) <= 6
    ship.close()

    assert stored(logs) == [f"line {i}" for i in range(60)]


def test_a_full_batch_goes_at_once_without_waiting(logs: Any, tmp_path: Path) -> None:
    clock = Clock()
    calls = count_calls(logs)
    ship = shipper(tmp_path, logs, clock, queue_lines=20_000)
    for i in range(MAX_EVENTS):
        ship.write(f"{i}")
    ship.pump()

    assert calls.get("PutLogEvents") == 1


def test_throttling_is_retried_within_the_budget_and_nothing_is_spooled(
    logs: Any, tmp_path: Path
) -> None:
    clock = Clock()
    throttled = [2]

    def when() -> bool:
        throttled[0] -= 1
        return throttled[0] >= 0

    seen = throttle(logs, "PutLogEvents", when)
    ship = shipper(tmp_path, logs, clock)
    ship.write("after two throttles")

    ship.close()

    assert seen == [0, 0, 1]
    assert stored(logs) == ["after two throttles"]
    assert ship.stats.spooled == 0


def test_with_the_network_down_lines_are_spooled_then_sent_in_order_without_duplicates(
    logs: Any, tmp_path: Path
) -> None:
    clock = Clock()
    client = Switch(unreachable())
    ship = shipper(tmp_path, client, clock, budget_seconds=0.5)
    for i in range(40):
        clock.now += 2
        ship.write(f"line {i}")
        if i % 5 == 4:
            ship.pump()
    assert ship.stats.spooled == 40
    assert (tmp_path / "spool" / "logs" / "pending.jsonl").exists()

    client.client = logs  # the network is back
    for i in range(40, 45):
        clock.now += 1
        ship.write(f"line {i}")
    clock.now += 120  # past the back-off
    ship.pump()
    ship.close()

    assert stored(logs) == [f"line {i}" for i in range(45)]
    assert ship.stats.dropped == 0
    assert not (tmp_path / "spool" / "logs" / "pending.jsonl").exists()


def test_what_a_run_left_in_the_spool_is_sent_by_the_next_flush(logs: Any, tmp_path: Path) -> None:
    clock = Clock()
    first = shipper(tmp_path, unreachable(), clock, budget_seconds=0.2)
    for i in range(3):
        first.write(f"old {i}")
    first.close(budget_seconds=0.2)
    assert first.stats.spooled == 3

    later = shipper(tmp_path, logs, clock)
    assert later.drain_spool(5.0)

    assert stored(logs) == ["old 0", "old 1", "old 2"]
    assert later.drain_spool(5.0)  # nothing left, nothing sent twice
    assert stored(logs) == ["old 0", "old 1", "old 2"]


def test_writing_never_blocks_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    hang = threading.Event()

    class Hanging:
        """A service that never answers: the shipper's thread is stuck in a call."""

        def __getattr__(self, _name: str) -> Any:
            def call(**_: Any) -> None:
                hang.wait(30)

            return call

    ship = LogShipper(
        lambda: (GROUP, STREAM),
        Hanging,
        tmp_path / "spool",
        interval=0.01,
        queue_lines=100,
    )
    try:
        ship.write("first")
        time.sleep(0.2)  # the thread took it and is now inside the hanging call
        started = time.perf_counter()
        for i in range(10_000):
            ship.write(f"line {i}")
        took = time.perf_counter() - started
    finally:
        hang.set()
    ship.close(budget_seconds=0.1)

    assert took < 1.0, f"10,000 writes took {took:.2f} s"
    assert ship.stats.lines_written == 10_001
    assert ship.stats.dropped == 10_000 - 100


def test_no_identity_means_no_stream_said_once_and_lines_counted_dropped(tmp_path: Path) -> None:
    said: list[str] = []

    def nobody() -> tuple[str, str]:
        raise RuntimeError("no array id (JOB_ARRAY_ID or the spawn:job-array-id tag)")

    ship = LogShipper(nobody, unreachable, tmp_path / "spool", start=False, err=said.append)
    ship.write("a")
    ship.pump()
    ship.write("b")
    ship.close()

    assert said[0].startswith("job output not sent to CloudWatch Logs: no array id")
    assert ship.stats.dropped == 2


def test_a_full_spool_drops_and_counts_instead_of_filling_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spawn_report.logs

    monkeypatch.setattr(spawn_report.logs, "SPOOL_MAX_BYTES", 10_000)
    clock = Clock()
    ship = shipper(tmp_path, unreachable(), clock, budget_seconds=0.2)
    for i in range(500):
        clock.now += 1
        ship.write(f"line {i:04d} " + "y" * 20)
        if i % 50 == 49:
            ship.pump()
    ship.close(budget_seconds=0.2)

    kept = (tmp_path / "spool" / "logs" / "pending.jsonl").read_text().splitlines()
    assert 0 < len(kept) == ship.stats.spooled < 500
    assert ship.stats.spooled + ship.stats.dropped == 500
