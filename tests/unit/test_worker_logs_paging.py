"""Paging a worker's tail under CloudWatch Logs' own semantics (a property): following
`next` from the newest page gives every line exactly once, in order, however many
streams and however many lines share a millisecond. moto's `endTime` is inclusive;
CloudWatch's is exclusive. The fake here answers as CloudWatch does, so the cursor is
checked against both (tests/integration/test_api_logs.py runs it on moto)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.worker_logs import reader
from chalicelib.worker_logs.reader import Budget, Position, WorkerLogs


class CloudWatchTail:
    """`get_log_events` backwards as CloudWatch Logs answers it: `endTime` exclusive, at
    most `limit` events, a backward token that stays put at the start of the stream."""

    def __init__(self, streams: dict[str, list[tuple[int, str]]], page_max: int) -> None:
        self.streams = {
            name: sorted(events, key=lambda e: e[0]) for name, events in streams.items()
        }
        self.page_max = page_max  # CloudWatch may return fewer than asked (1 MB)

    def get_log_events(self, **request: Any) -> dict[str, Any]:
        assert request["startFromHead"] is False
        chosen = [
            e
            for e in self.streams[request["logStreamName"]]
            if request["startTime"] <= e[0] < request["endTime"]
        ]
        token = request.get("nextToken")
        end = len(chosen) if token is None else int(token[2:])
        start = max(0, end - min(request["limit"], self.page_max))
        return {
            "events": [{"timestamp": t, "message": m} for t, m in chosen[start:end]],
            "nextBackwardToken": f"b/{start}",
            "nextForwardToken": f"f/{end}",
        }


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, list[tuple[int, str]]], int, int]:
    count = draw(st.integers(1, 3))
    streams = {}
    for n in range(count):
        # Few distinct milliseconds, so many lines share one.
        times = draw(st.lists(st.integers(1000, 1012), max_size=40))
        streams[f"a/0/i-{n}"] = [(t, f"s{n} #{k}") for k, t in enumerate(sorted(times))]
    return streams, draw(st.integers(1, 15)), draw(st.integers(1, 20))


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_following_next_gives_every_line_once_in_order(
    world: tuple[dict[str, list[tuple[int, str]]], int, int],
) -> None:
    streams, limit, page_max = world
    # The fake cuts pages at `page_max` events rather than at 1 MB: follow the tokens
    # to the end instead of taking a short page for the stream's start.
    reader.RESPONSE_BYTES, saved = 0, reader.RESPONSE_BYTES
    try:
        check_paging(streams, limit, page_max)
    finally:
        reader.RESPONSE_BYTES = saved


def test_a_short_page_is_the_streams_start_in_one_call() -> None:
    calls: list[dict[str, Any]] = []
    fake = CloudWatchTail({"a/0/i-0": [(1000 + n, f"l{n}") for n in range(7)]}, page_max=100)
    original = fake.get_log_events

    def counted(**request: Any) -> dict[str, Any]:
        calls.append(request)
        return original(**request)

    fake.get_log_events = counted  # type: ignore[method-assign]
    page = WorkerLogs(fake).page(["a/0/i-0"], Position(1012, 0, 1000), 5, Budget(10))  # type: ignore[arg-type]
    more = WorkerLogs(fake).page(["a/0/i-0"], page.next, 5, Budget(10))  # type: ignore[arg-type]
    assert [line.message for line in page.lines + more.lines] == [
        f"l{n}" for n in (2, 3, 4, 5, 6, 0, 1)
    ]
    assert more.next is None
    assert len(calls) == 2


def check_paging(streams: dict[str, list[tuple[int, str]]], limit: int, page_max: int) -> None:
    logs = WorkerLogs(CloudWatchTail(streams, page_max))  # type: ignore[arg-type]
    names = sorted(streams)
    position: Position | None = Position(1012, 0, 1000)
    pages = []
    while position is not None:
        page = logs.page(names, position, limit, Budget(10_000))
        assert len(page.lines) <= limit
        pages.append([(line.at_ms, line.message) for line in page.lines])
        position = page.next
        assert len(pages) < 500
    shown = [entry for page in reversed(pages) for entry in page]
    every = [entry for name in names for entry in streams[name]]
    # Each line once; in time order; within a stream, in the order it was written.
    assert sorted(shown) == sorted(every)
    assert [t for t, _ in shown] == sorted(t for t, _ in shown)
    for name in names:
        prefix = name.split("/")[-1].replace("i-", "s")
        mine = [m for _, m in shown if m.startswith(prefix + " ")]
        assert mine == [m for _, m in streams[name]]
