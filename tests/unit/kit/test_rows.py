"""The kit's side of the SPEC §4 row contract: the very file the backend uses, the same
sample rows, and the rows the kit builds."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import spawn_report.rows
from spawn_report.exceptions import ReportError
from spawn_report.reporter import build_row, sampled
from spawn_report.rows import MESSAGE_MAX, Invalid, Row, validate_row

import chalicelib.contract.rows
from tests.conftest import load_event

KEYS = ("render-20260127-a1b2c3", 7, "i-0123456789abcdef7", "ip-10-0-0-7")
NOW = datetime(2026, 1, 27, 10, 0, 0, 654321, tzinfo=UTC)


def test_the_backend_and_the_kit_share_one_file_not_a_copy() -> None:
    backend = Path(chalicelib.contract.rows.__file__)
    assert backend.is_symlink()
    assert os.path.samefile(backend, spawn_report.rows.__file__)


def test_the_shared_sample_rows_classify_as_the_backend_does() -> None:
    """The same rows as tests/unit/test_progress.py, as a worker writes them."""
    samples = load_event("progress-rows.json")
    assert all(isinstance(validate_row(r), Row) for r in samples["valid"])
    for image in samples["invalid"]:
        assert isinstance(validate_row(image), Invalid), image


def test_a_built_row_is_valid_and_stamped_to_the_second() -> None:
    row = build_row(KEYS, "completed", 100, NOW, tasks_total=100, error_count=2, message="ok")

    assert row == {
        "array_id": "render-20260127-a1b2c3",
        "task_index": 7,
        "status": "completed",
        "tasks_completed": 100,
        "last_update": "2026-01-27T10:00:00Z",
        "instance_id": "i-0123456789abcdef7",
        "hostname": "ip-10-0-0-7",
        "tasks_total": 100,
        "error_count": 2,
        "message": "ok",
    }
    assert isinstance(chalicelib.contract.rows.validate_row(row), chalicelib.contract.rows.Row)


def test_optional_fields_are_left_out_and_long_messages_cut() -> None:
    bare = build_row(KEYS, "running", 0, NOW)
    long = build_row(KEYS, "failed", 3, NOW, message="x" * 5000)

    assert set(bare) == {
        "array_id",
        "task_index",
        "status",
        "tasks_completed",
        "last_update",
        "instance_id",
        "hostname",
    }
    assert len(long["message"]) == MESSAGE_MAX


@pytest.mark.parametrize(
    ("keys", "status", "tasks", "reason"),
    [
        (KEYS, "done", 0, "status 'done' is not one of"),
        (KEYS, "running", -1, "tasks_completed -1 is not an integer"),
        (KEYS, "running", 10**13, "tasks_completed 10000000000000 is not an integer"),
        (("", 7, "i-1", "h"), "running", 0, "array_id '' is not a non-empty string"),
        (("a", 7, "i-1", ""), "running", 0, "hostname '' is not a non-empty string"),
        (("a", 7, "i-1", "h" * 256), "running", 0, "hostname is 256 characters, more than 255"),
    ],
)
def test_a_row_the_backend_would_call_invalid_is_refused_with_its_reason(
    keys: tuple[str, int, str, str], status: str, tasks: int, reason: str
) -> None:
    with pytest.raises(ReportError, match="progress not reported: " + reason):
        build_row(keys, status, tasks, NOW)


@pytest.mark.parametrize(
    ("tasks", "every", "expected"),
    [(0, 10, True), (3, 10, False), (10, 10, True), (None, 10, False), (3, None, True)],
)
def test_sampling_every_n_tasks(tasks: int | None, every: int | None, expected: bool) -> None:
    assert sampled(tasks, every) is expected


def test_a_row_may_carry_how_the_job_ended_and_shows_it() -> None:
    row = build_row(KEYS, "failed", 3, NOW, exit_code=137, signal="SIGKILL", message="Killed")

    parsed = validate_row(row)

    assert isinstance(parsed, Row)
    assert (parsed.exit_code, parsed.signal) == (137, "SIGKILL")
    assert parsed.to_json()["exit_code"] == 137
    assert parsed.to_json()["signal"] == "SIGKILL"


def test_a_row_without_an_exit_state_shows_no_such_fields() -> None:
    parsed = validate_row(build_row(KEYS, "running", 3, NOW))

    assert isinstance(parsed, Row)
    assert "exit_code" not in parsed.to_json()
    assert "signal" not in parsed.to_json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exit_code", -1),
        ("exit_code", 256),
        ("exit_code", "1"),
        ("exit_code", 1.5),
        ("exit_code", True),
        ("signal", "KILL"),
        ("signal", "sigkill"),
        ("signal", "SIG"),
        ("signal", 9),
        ("signal", "SIG" + "X" * 20),
    ],
)
def test_a_bad_exit_state_makes_the_row_invalid_and_says_which(field: str, value: object) -> None:
    row = {**build_row(KEYS, "failed", 3, NOW), field: value}

    parsed = validate_row(row)

    assert isinstance(parsed, Invalid)
    assert parsed.reason.startswith(f"{field} ")


def test_exit_state_read_back_from_dynamodb_numbers_is_kept() -> None:
    from decimal import Decimal

    row = {**build_row(KEYS, "failed", 3, NOW), "exit_code": Decimal(1), "signal": "SIGRTMIN+3"}

    parsed = validate_row(row)

    assert isinstance(parsed, Row)
    assert (parsed.exit_code, parsed.signal) == (1, "SIGRTMIN+3")
