"""`spawn-report progress` writes rows the backend counts as valid (SPEC §4, §12)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from chalicelib.progress.summary import progress_view, recount
from chalicelib.progress.workers import ProgressRows
from tests.integration.kit.conftest import (
    ARRAY,
    HOSTNAME,
    INSTANCE,
    Aws,
    rows,
    run_kit,
    spool_lines,
)


def worker(env: dict[str, str], index: int) -> dict[str, str]:
    return {**env, "JOB_ARRAY_INDEX": str(index), "SPAWN_INSTANCE_ID": f"i-{index:017x}"}


def test_rows_written_by_the_kit_are_valid_for_the_backend_summary(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    env = {**kit_env, "SPAWN_REPORT_FLUSH_SECONDS": "0"}
    runs = [
        run_kit(worker(env, 0), "progress", "--status", "running", "--tasks", "0"),
        run_kit(worker(env, 1), "progress", "--status", "running", "--tasks", "5", "--total", "9"),
        run_kit(
            worker(env, 2), "progress", "--status", "completed", "--tasks", "9", "--errors", "1"
        ),
        run_kit(
            worker(env, 3),
            "progress",
            "--status",
            "failed",
            "--tasks",
            "4",
            "--message",
            "task 4 failed: exit status 1 " + "x" * 900,
        ),
    ]
    assert [(r.returncode, r.stderr) for r in runs] == [(0, "")] * 4

    stored = ProgressRows(aws.client("dynamodb"), "spawn-progress").all(ARRAY)
    summary = recount(stored)
    view = progress_view(summary, (None, 4), datetime.now(UTC), 600)
    assert view["workers"] == {
        "total": 4,
        "pending": 0,
        "running": 2,
        "completed": 1,
        "failed": 1,
        "lost": 0,
        "stalled": 0,
        "invalid": 0,
    }
    assert view["tasks_completed"] == 0 + 5 + 9 + 4
    failed = next(r for r in stored if r["task_index"] == 3)
    assert failed["hostname"] == HOSTNAME
    assert len(failed["message"]) == 500  # cut to what the backend keeps


def test_a_running_row_is_sent_at_once_while_its_metrics_wait_in_the_spool(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    first = run_kit(kit_env, "progress", "--status", "running", "--tasks", "10", "--total", "30")

    assert (first.returncode, first.stderr) == (0, "")
    [row] = rows(aws)  # no flush: written when reported
    assert (row["status"], row["tasks_completed"]) == ({"S": "running"}, {"N": "10"})
    waiting = spool_lines(spool_dir)
    assert {e["kind"] for e in waiting} == {"metric"}  # the fleet counters are batched
    assert {e["name"] for e in waiting} == {"TasksCompleted", "ErrorCount"}

    second = run_kit(kit_env, "progress", "--status", "running", "--tasks", "20", "--total", "30")
    assert second.returncode == 0
    [row] = rows(aws)
    assert row["tasks_completed"] == {"N": "20"}

    done = run_kit(kit_env, "progress", "--status", "completed", "--tasks", "30", "--total", "30")

    assert (done.returncode, done.stderr) == (0, "")
    [row] = rows(aws)
    assert row["status"] == {"S": "completed"}
    assert row["instance_id"] == {"S": INSTANCE}
    assert not (spool_dir / "pending.jsonl").exists()  # a final status sends everything


def test_a_running_row_that_cannot_be_sent_waits_in_the_spool_and_says_so(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    offline = {**kit_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens

    result = run_kit(offline, "progress", "--status", "running", "--tasks", "4")

    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert line.startswith(f"spawn-report: progress of {ARRAY}[7] not sent (")
    assert line.endswith(f"it waits in the spool {spool_dir} for the next flush")
    assert [e["row"]["tasks_completed"] for e in spool_lines(spool_dir) if e["kind"] == "row"] == [
        4
    ]

    flushed = run_kit(kit_env, "flush")  # the endpoint is back

    assert (flushed.returncode, flushed.stderr) == (0, "")
    assert [r["tasks_completed"] for r in rows(aws)] == [{"N": "4"}]


def test_every_n_tasks_samples_running_rows_as_the_guide_does(
    aws: Aws, kit_env: dict[str, str], spool_dir: Path
) -> None:
    for tasks in (0, 3, 7, 10, 13):
        result = run_kit(
            kit_env,
            "progress",
            "--status",
            "running",
            "--tasks",
            str(tasks),
            "--every-n-tasks",
            "10",
        )
        assert result.returncode == 0

    [row] = rows(aws)  # 0 and 10 were sent; 3, 7 and 13 were not
    assert row["tasks_completed"] == {"N": "10"}
    increments = [e["value"] for e in spool_lines(spool_dir) if e["name"] == "TasksCompleted"]
    assert increments == [0, 10]


def test_a_row_the_backend_would_call_invalid_is_never_written(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    env = {**kit_env, "SPAWN_REPORT_FLUSH_SECONDS": "0"}

    result = run_kit(env, "progress", "--status", "running", "--tasks", str(10**13))

    assert result.returncode == 0  # never fails the job
    assert "progress not reported: tasks_completed 10000000000000" in result.stderr
    assert rows(aws) == []
    strict = run_kit(env, "progress", "--status", "running", "--tasks", str(10**13), "--strict")
    assert strict.returncode == 1


def test_a_worker_that_cannot_tell_its_array_says_so_and_exits_0(
    aws: Aws, kit_env: dict[str, str]
) -> None:
    env = {k: v for k, v in kit_env.items() if k != "JOB_ARRAY_ID"}

    result = run_kit(env, "progress", "--status", "completed", "--tasks", "1")

    assert result.returncode == 0
    assert result.stderr.strip() == (
        "spawn-report: cannot tell this worker's array id "
        "(JOB_ARRAY_ID or the spawn:job-array-id tag)"
    )
    assert rows(aws) == []


def test_usage_errors_never_fail_the_job_unless_strict(kit_env: dict[str, str]) -> None:
    loose = run_kit(kit_env, "progress", "--status", "done")
    strict = run_kit(kit_env, "progress", "--status", "done", "--strict")

    assert loose.returncode == 0
    assert strict.returncode == 2
    for result in (loose, strict):
        assert "invalid choice: 'done'" in result.stderr
        assert "Traceback" not in result.stderr
