"""The kit's settings: one frozen object from the environment; bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest
from spawn_report.exceptions import SettingsError
from spawn_report.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({"HOME": "/home/worker"})

    assert settings.spool_dir == Path("/home/worker/.local/state/spawn-report")
    assert (settings.progress_table, settings.flush_seconds, settings.budget_seconds) == (
        "spawn-progress",
        120.0,
        10.0,
    )
    assert (settings.strict, settings.background, settings.metadata_disabled) == (
        False,
        True,
        False,
    )
    assert settings.array_id is None
    assert settings.metadata_endpoint == "http://169.254.169.254/"


def test_spawn_identity_variables_and_the_guides_task_array_index() -> None:
    env = {"HOME": "/h", "JOB_ARRAY_ID": "a-20260127-abcdef", "TASK_ARRAY_INDEX": "4"}

    settings = Settings.from_env(env)

    assert (settings.array_id, settings.array_index) == ("a-20260127-abcdef", 4)
    assert Settings.from_env({**env, "JOB_ARRAY_INDEX": "2"}).array_index == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOB_ARRAY_INDEX", "-1"),
        ("JOB_ARRAY_INDEX", "three"),
        ("SPAWN_REPORT_FLUSH_SECONDS", "soon"),
        ("SPAWN_REPORT_BUDGET_SECONDS", "-5"),
        ("SPAWN_REPORT_FLUSH_SECONDS", "inf"),
        ("SPAWN_REPORT_STRICT", "maybe"),
    ],
)
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"HOME": "/h", name: value})
