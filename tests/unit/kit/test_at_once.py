"""A `running` row goes out when reported; one that cannot waits in the spool, said once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spawn_report import Identity, Reporter, Settings

T0 = 1_769_508_000.0
NOWHERE = Identity("render-20260127-a1b2c3", 7, "i-0123456789abcdef7", "ip-10-0-0-7", None)


def test_rows_that_cannot_be_sent_wait_in_the_spool_and_the_reason_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    said: list[str] = []
    settings = Settings(spool_dir=tmp_path / "spool", background=False, flush_seconds=3600)
    report = Reporter(settings, identity=NOWHERE, clock=lambda: T0, err=said.append)

    assert report.progress("running", 3)
    assert report.progress("running", 4)

    assert len(said) == 1
    assert "not sent (You must specify a region" in said[0]
    assert said[0].endswith(f"it waits in the spool {settings.spool_dir} for the next flush")
    lines = [json.loads(x) for x in (settings.spool_dir / "pending.jsonl").read_text().split()]
    assert [e["row"]["tasks_completed"] for e in lines if e["kind"] == "row"] == [3, 4]


def test_metrics_spooled_with_no_region_to_send_them_to_say_so_once(tmp_path: Path) -> None:
    said: list[str] = []
    settings = Settings(spool_dir=tmp_path / "spool", background=False, flush_seconds=3600)
    report = Reporter(settings, identity=NOWHERE, clock=lambda: T0, err=said.append)

    assert report.metric("Processed", 1)
    assert report.metric("Processed", 2)

    assert said == [
        "no AWS region (AWS_DEFAULT_REGION, or the instance's own): reports wait in "
        f"the spool {settings.spool_dir} until a flush can send them"
    ]
    placed = Reporter(
        settings,
        identity=Identity(*NOWHERE.require_row_keys(), "us-east-1"),
        clock=lambda: T0,
        err=said.append,
    )
    assert placed.metric("Processed", 3)
    assert len(said) == 1  # a region known: nothing to say
