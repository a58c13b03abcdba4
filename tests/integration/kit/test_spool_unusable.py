"""A spool that cannot be written (a full disk, a read-only or misconfigured directory)
must not kill the job either: the report goes out at once, unbuffered."""

from __future__ import annotations

from pathlib import Path

from tests.integration.kit.conftest import Aws, rows, run_kit


def unusable(tmp_path: Path) -> str:
    """A spool directory that can never be created: its parent is a regular file
    (`mkdir` fails with an OSError even for root, unlike a chmod)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return str(blocker / "spool")


def test_with_an_unusable_spool_progress_is_sent_directly_and_the_job_goes_on(
    aws: Aws, kit_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**kit_env, "SPAWN_REPORT_DIR": unusable(tmp_path)}

    result = run_kit(env, "progress", "--status", "running", "--tasks", "3", "--total", "10")

    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    assert "spool" in result.stderr
    assert "sent unbuffered" in result.stderr
    assert [r["tasks_completed"] for r in rows(aws)] == [{"N": "3"}]


def test_with_an_unusable_spool_metrics_are_sent_directly(
    aws: Aws, kit_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**kit_env, "SPAWN_REPORT_DIR": unusable(tmp_path)}

    result = run_kit(env, "metric", "QueueDepth", "12", "--unit", "Count")
    flushed = run_kit(env, "flush")

    assert (result.returncode, flushed.returncode) == (0, 0)
    assert "Traceback" not in result.stderr + flushed.stderr
    assert aws.metric("Spawn/Workers", "QueueDepth", {"ArrayId": "render-20260127-a1b2c3"}) == 12


def test_strict_turns_an_unusable_spool_into_exit_1(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**kit_env, "SPAWN_REPORT_DIR": unusable(tmp_path)}

    result = run_kit(env, "metric", "--strict", "QueueDepth", "12")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
