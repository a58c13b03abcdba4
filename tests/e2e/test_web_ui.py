"""`spawn-monitor ui` in a real browser: Debian's headless Chromium driven by Selenium,
against the local stack, at 1400 and 420 px. Screenshots go to `build/artefacts/`
(`SFM_WEB_SCREENSHOTS=docs` writes the ones the docs show).

Selenium's own browser download cannot reach its host here, so the test uses the
system's `chromium` and `chromedriver` (`.ci/run` installs them). Where they cannot be
installed the test is skipped, and the run's summary says so in capitals.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, eventually, put_rows
from tests.e2e.test_cli import SCRIPT, environment, summarised, write_rows
from tests.e2e.test_local_stack import (
    _alarm_message,
    _topic,
    alarms_of,
    launch,
    put_ec2_event,
    running,
)

pytestmark = pytest.mark.e2e
# `SFM_WEB_SCREENSHOTS=docs` refreshes the screenshots the docs show.
SCREENSHOTS = ROOT / os.environ.get("SFM_WEB_SCREENSHOTS", "build/artefacts")
BROWSER_SKIPPED = "BROWSER TEST SKIPPED"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip(
            f"{BROWSER_SKIPPED}: no chromium/chromedriver on PATH "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def ui(stack: Stack) -> Iterator[str]:
    process = subprocess.Popen(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), "ui", "--port", "0", "--refresh", "1"],
        env=environment(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", banner)
    assert match, (banner, process.stderr.read() if process.poll() is not None else "")
    yield match.group(0)
    process.terminate()
    process.wait(timeout=10)


READ_PAGE = (Path(__file__).parent / "read_page.js").read_text()


def read(driver: Any, what: str) -> dict[str, Any]:
    """`readFleet` or `readArray` from `read_page.js`, run in the page."""
    return dict(driver.execute_script(f"{READ_PAGE}\nreturn {what}();"))


@dataclass
class Arrays:
    """What the test writes: one array of each kind the page must tell apart."""

    active: str  # 6 completed, 1 failed, 2 running, 1 lost to a spot interruption
    idle: str  # running at 0 %: 4 workers, none of their 100 tasks done
    newer: str  # finished, with a failure
    older: str  # finished before `newer`
    instance: str  # the lost worker's instance

    @property
    def ids(self) -> set[str]:
        return {self.active, self.idle, self.newer, self.older}


def _populate(stack: Stack) -> Arrays:
    stamp = datetime.now(UTC).strftime("%H%M%S")
    arrays = Arrays(
        active=f"webview-{stamp}-1a1a1a",
        idle=f"webidle-{stamp}-2b2b2b",
        newer=f"webnew-{stamp}-4d4d4d",
        older=f"webold-{stamp}-3c3c3c",
        instance="",
    )
    write_rows(stack, arrays.older, ["completed"] * 3)
    summarised(stack, arrays.older, 3)
    time.sleep(1.1)  # report times have a one-second resolution
    write_rows(stack, arrays.newer, ["completed"] * 3 + ["failed"])
    summarised(stack, arrays.newer, 4)
    put_rows(stack, arrays.idle, [("running", 0, 100, f"i-{9_000 + i:017x}") for i in range(4)])
    summarised(stack, arrays.idle, 4)
    # The last worker of the active array runs on a real instance: an alarm fires on it,
    # then a spot interruption ends it while its row still says running (lost).
    tags = {"spawn:managed": "true", "spawn:job-array-id": arrays.active}
    [arrays.instance] = launch(stack, tags={**tags, "spawn:job-array-index": "9"})
    running(stack, arrays.instance)
    eventually(lambda: len(alarms_of(stack, arrays.instance)) == 2, timeout=5)
    statuses = ["completed"] * 6 + ["failed"] + ["running"] * 3
    put_rows(
        stack,
        arrays.active,
        [
            (s, 1 if s == "running" else 3, 3, f"i-{8_000 + i:017x}")
            for i, s in enumerate(statuses[:-1])
        ]
        + [("running", 1, 3, arrays.instance)],
    )
    summarised(stack, arrays.active, 10)
    stack.client("sns").publish(
        TopicArn=_topic(stack, "spawn-alerts"),
        Subject="ALARM",
        Message=_alarm_message(arrays.instance, "ALARM", datetime.now(UTC) + timedelta(seconds=1)),
    )
    detail = {"instance-id": arrays.instance, "instance-action": "terminate"}
    put_ec2_event(stack, "ec2-spot-interruption-warning.json", detail)
    stack.client("ec2").terminate_instances(InstanceIds=[arrays.instance])
    put_ec2_event(
        stack,
        "ec2-state-change-terminated.json",
        {"instance-id": arrays.instance, "state": "terminated"},
        datetime.now(UTC) + timedelta(seconds=5),
    )
    eventually(lambda: stack.get(f"/arrays/{arrays.active}/progress")[1]["workers"]["lost"] == 1)
    # The lost worker's log, as the kit writes it: 150 lines, the last a traceback's.
    write_log(
        stack,
        f"{arrays.active}/9/{arrays.instance}",
        [f"step {n}" for n in range(149)] + ["RuntimeError: CUDA out of memory"],
    )

    def both_kinds() -> bool:
        kinds = {a["kind"] for a in _alerts(stack) if a.get("instance_id") == arrays.instance}
        return kinds == {"alarm", "system"}

    eventually(both_kinds)
    # The history gains a point each tick (one second here): a few make a line.
    history = f"/arrays/{arrays.active}/history"
    eventually(lambda: len(stack.get(history)[1]["points"]) >= 4, timeout=30)
    return arrays


def write_log(stack: Stack, stream: str, messages: list[str]) -> None:
    """Log events in the workers' group, one a millisecond up to now, oldest first."""
    logs = stack.client("logs")
    for create, name in (
        (logs.create_log_group, {}),
        (logs.create_log_stream, {"logStreamName": stream}),
    ):
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            create(logGroupName="/aws/spawn/workers", **name)
    now = int(time.time() * 1000)
    events = [{"timestamp": now - len(messages) + n, "message": m} for n, m in enumerate(messages)]
    logs.put_log_events(logGroupName="/aws/spawn/workers", logStreamName=stream, logEvents=events)


def _alerts(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.get("/alerts?limit=50")[1]["alerts"])


def _expected_bar(progress: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """The bar's basis and parts for an API answer, as the page must draw them."""
    tasks, workers = progress.get("tasks") or {}, progress["workers"]
    if tasks.get("total"):
        done, rest = tasks["completed"], tasks["total"] - tasks["completed"]
        parts = {"completed": done, "failed" if progress.get("finished_at") else "remaining": rest}
        return "tasks", {k: v for k, v in parts.items() if v}
    parts = {s: workers[s] for s in ("completed", "failed", "lost")}
    parts["remaining"] = workers["total"] - sum(parts.values())
    return "workers", {k: v for k, v in parts.items() if v}


def _inside(box: dict[str, Any], width: int) -> bool:
    return bool(box["width"] > 0 and box["left"] >= -0.5 and box["right"] <= width + 0.5)


def _check_fleet(stack: Stack, arrays: Arrays, fleet: dict[str, Any]) -> None:
    width = fleet["innerWidth"]
    # Active arrays first, then the newest finished.
    assert fleet["finished"] == sorted(fleet["finished"]), fleet["ids"]
    ours = [i for i in fleet["ids"] if i in arrays.ids]
    assert ours.index(arrays.older) > ours.index(arrays.newer) > ours.index(arrays.active)
    assert ours.index(arrays.newer) > ours.index(arrays.idle)
    # A bar whose parts add up (by tasks once a total is known), and a legend.
    assert fleet["legend"] == ["completed", "failed", "lost", "remaining"]
    for array_id in (arrays.active, arrays.idle, arrays.newer):
        row, progress = fleet["arrays"][array_id], stack.get(f"/arrays/{array_id}/progress")[1]
        basis, parts = _expected_bar(progress)
        assert basis == "tasks", progress  # every row here declares tasks_total
        assert row["basis"] == basis, (array_id, row)
        assert {s["key"]: s["n"] for s in row["segments"]} == parts, (array_id, row)
        assert abs(sum(s["width"] for s in row["segments"]) - row["bar"]["width"]) < 1.5
        assert f"{progress['percent_complete']:.1f} %" in row["cells"]["progress"]
    # A running array at 0 % reads as not started: its whole bar is "remaining".
    idle = fleet["arrays"][arrays.idle]
    assert [s["key"] for s in idle["segments"]] == ["remaining"], idle
    assert idle["cells"]["progress"].startswith("0.0 %")
    assert idle["cells"]["ETA"] != "done"
    assert fleet["arrays"][arrays.newer]["cells"]["ETA"] == "done"
    # Per array: start, duration, interruptions and lost.
    cells = fleet["arrays"][arrays.active]["cells"]
    assert (cells["lost"], cells["failed"]) == ("1", "1")
    assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d", cells["started"]), cells
    assert re.fullmatch(r"\d+(s|m \d\ds|h \d\dm)", cells["duration"]), cells
    interruptions = stack.get(f"/arrays/{arrays.active}/progress")[1]["interruptions"]
    assert interruptions >= 1  # the spot interruption that lost a worker
    assert cells["interruptions"] == str(interruptions), cells
    # The alerts panel: the instance's alarm, and the system's own spot interruption alert.
    alarms = [a for a in fleet["alerts"] if a["kind"] == "alarm" and arrays.instance in a["text"]]
    assert alarms, fleet["alerts"]
    assert "ALARM" in alarms[0]["text"]
    spot = [a for a in fleet["alerts"] if a["event_type"] == "spot_interruption"]
    assert any(a["kind"] == "system" and a["array_id"] == arrays.active for a in spot), spot
    assert all(a["severity"] for a in fleet["alerts"]), fleet["alerts"]
    # Times in UTC, the header clock too.
    assert all(a["at"].endswith(" UTC") for a in fleet["alerts"])
    assert fleet["clock"].endswith(" UTC")
    assert fleet["refreshed"].endswith(" UTC")
    # Nothing scrolls sideways; the key cells lie inside the window.
    assert fleet["scrollWidth"] <= width
    for array_id in (arrays.active, arrays.idle):
        keys = fleet["arrays"][array_id]["key"]
        assert {k["label"] for k in keys} >= {"array", "status", "progress", "lost", "ETA"}
        assert all(_inside(k, width) for k in keys), keys
        assert _inside(fleet["arrays"][array_id]["bar"], width)
    assert all(_inside(a, width) for a in fleet["alerts"])


def _check_array(stack: Stack, arrays: Arrays, view: dict[str, Any]) -> None:
    facts = view["facts"]
    assert facts["started"].endswith(" UTC"), facts
    assert facts["lost"] == "1"
    assert facts["duration"] != "—"
    assert "interruptions" in facts
    assert "lost (1)" in view["tabs"]
    assert "running (2)" in view["tabs"]
    chart = view["workersChart"]
    assert chart["points"] >= 4
    assert len(chart["x"]) >= 3, chart
    assert len(chart["y"]) >= 3, chart
    assert chart["grid"] >= len(chart["x"]) + len(chart["y"])
    assert all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in chart["x"]), chart
    assert "time (UTC)" in chart["text"]
    assert "series series-lost" in chart["series"]
    # Tasks over time, from the task counts the history points carry.
    points = stack.get(f"/arrays/{arrays.active}/history")[1]["points"]
    assert any(p["tasks_completed"] is not None for p in points), points
    tasks = view["tasksChart"]
    assert tasks, view
    assert "series series-tasks-completed" in tasks["series"]
    assert tasks["points"] >= 4
    assert len(tasks["y"]) >= 3
    assert facts["interruptions"] != "—"
    # Cost so far, rate, projected against the budget, once the API carries a cost.
    body = stack.get(f"/arrays/{arrays.active}/progress")[1]
    if isinstance(body.get("cost"), dict):
        assert re.match(r"\$\d[\d,]*\.\d+ so far", facts["cost"]), facts
    else:
        assert "cost" not in facts, facts


def test_the_web_view_reads_at_a_glance_at_1400_and_420_px(
    stack: Stack, ui: str, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    arrays = _populate(stack)
    wait = WebDriverWait(browser, 20)

    def fleet_shown(d: Any) -> dict[str, Any] | None:
        page = read(d, "readFleet")
        ready = page["loaded"] == "fleet" and arrays.ids <= set(page["ids"]) and page["alerts"]
        return page if ready else None

    browser.set_window_size(1400, 1000)
    browser.get(ui)
    fleet = wait.until(fleet_shown)
    assert fleet["innerWidth"] >= 1380, fleet["innerWidth"]
    _check_fleet(stack, arrays, fleet)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "web-ui-fleet.png"))

    # One array: its facts, its charts, then the lost tab.
    def array_shown(d: Any) -> dict[str, Any] | None:
        page = read(d, "readArray")
        ready = page["loaded"] == "array" and arrays.active in page["title"] and page["workers"]
        return page if ready and page["workersChart"] else None

    browser.set_window_size(1400, 1250)  # tall enough for the screenshot to reach the workers
    browser.get(f"{ui}#/arrays/{arrays.active}")
    _check_array(stack, arrays, wait.until(array_shown))
    # Clicked from a script: an element found first could be redrawn before the click.
    browser.execute_script("document.querySelector('#status-tabs [data-status=lost]').click()")

    def lost_shown(d: Any) -> dict[str, Any] | None:
        page = read(d, "readArray")
        tab = page["active"] and page["active"][0].startswith("lost")
        return (
            page if tab and page["workers"][:1] and page["workers"][0]["status"] == "lost" else None
        )

    lost = wait.until(lost_shown)
    assert [w["status"] for w in lost["workers"]] == ["lost"]
    assert arrays.instance in lost["workers"][0]["text"]
    browser.save_screenshot(str(SCREENSHOTS / "web-ui-array.png"))

    # The lost worker's row opens its log tail: the last 100 lines, then 50 more.
    browser.execute_script(
        "document.querySelector('#workers tbody tr.opens-log .log-open').click()"
    )

    def log_lines(n: int) -> Any:
        def shown(d: Any) -> dict[str, Any] | None:
            log = read(d, "readArray")["log"]
            return log if log and len(log["lines"]) == n else None

        return shown

    tail = wait.until(log_lines(100))
    assert tail["lines"][-1].endswith("RuntimeError: CUDA out of memory"), tail["lines"][-1]
    assert tail["lines"][0].endswith(" step 50"), tail["lines"][0]
    assert tail["more"]
    assert "task 9" in tail["title"]
    browser.execute_script("document.getElementById('log-more').click()")
    everything = wait.until(log_lines(150))
    assert everything["lines"][0].endswith(" step 0")
    assert everything["lines"][50:] == tail["lines"]
    assert not everything["more"]

    # A 420 px phone: rows stack, nothing scrolls sideways, the key fields stay in view.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 420, "height": 1800, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        narrow = wait.until(lost_shown)
        # A page wider than the phone would make the browser zoom out (innerWidth > 420).
        assert narrow["innerWidth"] == 420, narrow
        assert narrow["scrollWidth"] <= 420, narrow
        assert all(_inside(k, 420) for k in narrow["workers"][0]["key"]), narrow["workers"]
        browser.get(ui)
        fleet = wait.until(fleet_shown)
        assert fleet["innerWidth"] == 420, fleet
        _check_fleet(stack, arrays, fleet)
        browser.save_screenshot(str(SCREENSHOTS / "web-ui-420.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert (SCREENSHOTS / "web-ui-420.png").stat().st_size > 10_000


def test_the_proxy_answers_only_its_own_host(ui: str) -> None:
    port = ui.rstrip("/").rsplit(":", 1)[1]
    with urllib.request.urlopen(f"{ui}api/health", timeout=5) as response:
        assert response.status == 200
    foreign = urllib.request.Request(f"{ui}api/fleet", headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=5)
    assert refused.value.code == 403
