"""The delivery rules the local stack and the chaos replay share (`testkit.delivery`)."""

from __future__ import annotations

import doctest

import pytest

import testkit.delivery
from testkit.delivery import (
    ASYNC_RETRIES,
    async_retry_delay,
    batch_due,
    reported_failures,
    sqs_settle,
    stream_resume,
)


@pytest.mark.parametrize(
    ("count", "now", "due"),
    [
        (0, 1000.0, False),  # nothing waits: nothing to hand over, however late
        (3, 119.9, False),  # neither full nor waited the window
        (3, 120.0, True),  # the oldest has waited the window
        (10, 100.0, True),  # full: goes at once
        (12, 100.0, True),
    ],
)
def test_a_batch_goes_when_full_or_when_its_oldest_has_waited_the_window(
    count: int, now: float, due: bool
) -> None:
    assert batch_due(count, 10, oldest=100.0, window=20.0, now=now) is due


def test_a_batch_of_one_goes_at_once() -> None:
    assert batch_due(1, 1, oldest=5.0, window=0.5, now=5.0)


def test_the_failures_a_partial_batch_response_names_in_its_order() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}]}
    assert reported_failures(response) == ["b", "a"]


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, "done", 7])
def test_a_response_that_names_no_failure_names_none(response: object) -> None:
    assert reported_failures(response) == []


def test_an_sqs_batch_deletes_what_was_not_reported_failed() -> None:
    batch = [{"MessageId": m} for m in ("m1", "m2", "m3")]
    done, again = sqs_settle(batch, lambda m: m["MessageId"], {"m2"})
    assert [m["MessageId"] for m in done] == ["m1", "m3"]
    assert [m["MessageId"] for m in again] == ["m2"]


def test_a_crashed_sqs_invocation_deletes_nothing() -> None:
    done, again = sqs_settle(["m1", "m2"], str, None)
    assert (done, again) == ([], ["m1", "m2"])


def test_an_sqs_batch_with_no_failures_is_all_deleted() -> None:
    assert sqs_settle(["m1", "m2"], str, set()) == (["m1", "m2"], [])


SEQUENCES = ["100", "200", "300", "400"]


def test_a_stream_batch_without_failures_is_all_done() -> None:
    assert stream_resume(SEQUENCES, []) == 4


def test_a_stream_shard_resumes_at_its_earliest_reported_failure() -> None:
    # Reported out of order: the checkpoint is the lowest, not the first named.
    assert stream_resume(SEQUENCES, ["400", "200"]) == 1


def test_a_crashed_stream_invocation_retries_the_whole_batch() -> None:
    assert stream_resume(SEQUENCES, None) == 0


def test_a_failure_naming_no_record_of_the_batch_retries_the_whole_batch() -> None:
    assert stream_resume(SEQUENCES, ["300", "999"]) == 0


def test_an_asynchronous_invocation_is_retried_twice_then_given_up() -> None:
    delays = [async_retry_delay(attempts) for attempts in range(1, ASYNC_RETRIES + 2)]
    assert delays == [60.0, 120.0, None]


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(testkit.delivery).failed == 0
