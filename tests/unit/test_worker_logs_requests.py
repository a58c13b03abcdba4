"""The requests `WorkerLogs` sends, checked with botocore's Stubber: moto ignores the
parts that make the reads cheap in AWS (the regex filter pattern, `logStreamNamePrefix`),
so these pin what CloudWatch Logs is asked, while tests/integration/test_api_logs.py
checks the answers on moto."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from chalicelib.worker_logs.bounds import ERROR_FILTER, ERROR_RE, grep_filter
from chalicelib.worker_logs.reader import Budget, Position, WorkerLogs, cut

GROUP = "/aws/spawn/workers"


def _client() -> tuple[WorkerLogs, Stubber]:
    client = boto3.client(
        "logs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return WorkerLogs(client), Stubber(client)


def test_errors_scan_the_arrays_prefix_with_the_error_regex_in_pages() -> None:
    logs, stub = _client()
    base = {
        "logGroupName": GROUP,
        "logStreamNamePrefix": "a-1/",
        "startTime": 1000,
        "endTime": 2000,
        "filterPattern": "%ERROR|Error|Traceback|Exception%",
        "limit": 10_000,
    }
    stub.add_response(
        "filter_log_events",
        {
            "events": [
                {"logStreamName": "a-1/0/i-1", "timestamp": 1500, "message": "ERROR x"},
                # Another array whose id starts alike, and a line that is no error.
                {"logStreamName": "a-10/0/i-1", "timestamp": 1500, "message": "ERROR y"},
                {"logStreamName": "a-1/0/i-1", "timestamp": 1600, "message": "fine"},
            ],
            "nextToken": "t1",
        },
        base,
    )
    stub.add_response(
        "filter_log_events",
        {"events": [{"logStreamName": "a-1/2/i-2", "timestamp": 1700, "message": "Traceback"}]},
        {**base, "nextToken": "t1"},
    )
    with stub:
        report = logs.errors("a-1", 1000, 2000, 10)
    stub.assert_no_pending_responses()
    assert [(w.task_index, w.instance_id, w.count) for w in report.workers] == [
        (0, "i-1", 1),
        (2, "i-2", 1),
    ]
    assert (report.complete, report.calls) == (True, 2)


def test_a_tail_reads_backwards_and_a_grep_sends_one_quoted_phrase() -> None:
    # One line, fewer than asked with room to spare: the stream's start, so one call.
    logs, stub = _client()
    stub.add_response(
        "get_log_events",
        {
            "events": [{"timestamp": 1900, "message": "last"}],
            "nextBackwardToken": "b/1",
            "nextForwardToken": "f/1",
        },
        {
            "logGroupName": GROUP,
            "logStreamName": "a-1/0/i-1",
            "startTime": 1000,
            # CloudWatch Logs' endTime is exclusive: the position's millisecond is included.
            "endTime": 2001,
            "startFromHead": False,
            "limit": 5,
        },
    )
    stub.add_response(
        "filter_log_events",
        {"events": [{"logStreamName": "a-1/0/i-1", "timestamp": 1990, "message": "CUDA out"}]},
        {
            "logGroupName": GROUP,
            "logStreamNames": ["a-1/0/i-1"],
            "startTime": 1000,
            "endTime": 2000,
            "filterPattern": '"CUDA out"',
            "limit": 10_000,
        },
    )
    position = Position(2000, 0, 1000)
    with stub:
        tail = logs.page(["a-1/0/i-1"], position, 5, Budget(12))
        grep = logs.page(["a-1/0/i-1"], position, 5, Budget(12), grep="CUDA out")
    stub.assert_no_pending_responses()
    assert [line.message for line in tail.lines] == ["last"]
    assert tail.next is None
    assert [line.message for line in grep.lines] == ["CUDA out"]


def test_the_error_pattern_and_the_grep_phrase() -> None:
    assert ERROR_FILTER == "%ERROR|Error|Traceback|Exception%"
    matched = ["ERROR disk", "RuntimeError: CUDA out of memory", "Traceback (most", "Exception"]
    assert all(ERROR_RE.search(m) for m in matched)
    assert not any(ERROR_RE.search(m) for m in ("error", "warning", "EXCEPTIONAL"))
    assert grep_filter("CUDA out") == '"CUDA out"'
    assert cut("é" * 10, 5) == "éé…"
