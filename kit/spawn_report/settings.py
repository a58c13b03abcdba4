"""The kit's settings: read from the environment once, into one frozen object.

Command-line options override them (`cli.py` builds the object with `replace`). A
malformed value raises `SettingsError` naming the variable, before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spawn_report.exceptions import SettingsError

DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254/"


def _default_spool_dir(env: Mapping[str, str]) -> Path:
    """Per user, kept across runs (XDG state directory), never a shared /tmp path."""
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(base) / "spawn-report"


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name}={raw!r} must be a finite number ≥ {minimum:g}")
    return value


def _index(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if not raw.strip().isdigit():
            raise SettingsError(f"{name}={raw!r} is not an integer ≥ 0")
        return int(raw)
    return None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


@dataclass(frozen=True)
class Settings:
    """Everything the kit reads from its environment.

    Attributes:
        spool_dir: the local buffer (`SPAWN_REPORT_DIR`, default
            `~/.local/state/spawn-report`).
        progress_table: the SPEC §4 table (`PROGRESS_TABLE`, default `spawn-progress`).
        flush_seconds: the longest anything waits in the spool before it is sent
            (`SPAWN_REPORT_FLUSH_SECONDS`, default 120; 0 sends at once).
        budget_seconds: how long one flush may retry AWS errors before it drops what
            it could not send (`SPAWN_REPORT_BUDGET_SECONDS`, default 10).
        strict: reporting failures exit 1 instead of 0 (`SPAWN_REPORT_STRICT`).
        background: start a flusher process when data wait in the spool
            (`SPAWN_REPORT_BACKGROUND`, default true).
        rows_at_once: send a `running` progress row when it is reported, not with the
            next flush (`SPAWN_REPORT_ROWS_AT_ONCE`, default true); metrics still wait.
        array_id, array_index, instance_id, hostname: identity overrides
            (`JOB_ARRAY_ID`, `JOB_ARRAY_INDEX` or `TASK_ARRAY_INDEX`,
            `SPAWN_INSTANCE_ID`, `SPAWN_HOSTNAME`).
        region: `AWS_REGION` or `AWS_DEFAULT_REGION`; otherwise the instance's own.
        metadata_endpoint, metadata_disabled: the instance metadata service, as botocore
            reads them (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_EC2_METADATA_DISABLED`).
    """

    spool_dir: Path
    progress_table: str = "spawn-progress"
    flush_seconds: float = 120.0
    budget_seconds: float = 10.0
    strict: bool = False
    background: bool = True
    rows_at_once: bool = True
    array_id: str | None = None
    array_index: int | None = None
    instance_id: str | None = None
    hostname: str | None = None
    region: str | None = None
    metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT
    metadata_disabled: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default `os.environ`); SettingsError names a bad one."""
        env = os.environ if env is None else env
        return cls(
            spool_dir=Path(env.get("SPAWN_REPORT_DIR") or _default_spool_dir(env)),
            progress_table=env.get("PROGRESS_TABLE") or "spawn-progress",
            flush_seconds=_number(env, "SPAWN_REPORT_FLUSH_SECONDS", 120.0, 0.0),
            budget_seconds=_number(env, "SPAWN_REPORT_BUDGET_SECONDS", 10.0, 0.0),
            strict=_flag(env, "SPAWN_REPORT_STRICT", False),
            background=_flag(env, "SPAWN_REPORT_BACKGROUND", True),
            rows_at_once=_flag(env, "SPAWN_REPORT_ROWS_AT_ONCE", True),
            array_id=env.get("JOB_ARRAY_ID") or None,
            array_index=_index(env, "JOB_ARRAY_INDEX", "TASK_ARRAY_INDEX"),
            instance_id=env.get("SPAWN_INSTANCE_ID") or None,
            hostname=env.get("SPAWN_HOSTNAME") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            metadata_endpoint=env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            or DEFAULT_METADATA_ENDPOINT,
            metadata_disabled=_flag(env, "AWS_EC2_METADATA_DISABLED", False),
        )
