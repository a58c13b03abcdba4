"""`spawn-monitor ui` in a real browser: Debian's headless Chromium driven by Selenium,
against the local stack. Screenshots are saved under `build/artefacts/`.

Selenium's own browser download cannot reach its host here, so the test uses the
system's `chromium` and `chromedriver` (`.ci/run` installs them). Where they cannot be
installed the test is skipped, and the run's summary says so in capitals.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, eventually
from tests.e2e.test_cli import SCRIPT, environment, summarised, write_rows

pytestmark = pytest.mark.e2e
ARTEFACTS = ROOT / "build" / "artefacts"
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
    "--window-size=1280,900",
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


def test_the_web_view_shows_arrays_and_one_arrays_chart(
    stack: Stack, ui: str, browser: Any
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    array_id = "webview-20261127-1a1a1a"
    write_rows(stack, array_id, ["completed"] * 6 + ["failed"] + ["running"] * 3)
    summarised(stack, array_id, 10)
    # The history gains a point each tick (one second here); a line needs two.
    eventually(lambda: len(stack.get(f"/arrays/{array_id}/history")[1]["points"]) >= 2, timeout=30)

    # The page redraws itself every few seconds: an element found before a redraw is
    # stale after it. Each view is therefore read whole inside a wait that starts over
    # when a redraw got in the way.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(ui)
    wait.until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "fleet"
    )
    selector = f'tr.array-row[data-array-id="{array_id}"]'

    def fleet_view(d: Any) -> dict[str, Any]:
        rows = d.find_elements(By.CSS_SELECTOR, "#arrays tr.array-row")
        row = d.find_element(By.CSS_SELECTOR, selector)
        return {
            "ids": [r.get_attribute("data-array-id") for r in rows],
            "rows": len(rows),
            "bars": len(d.find_elements(By.CSS_SELECTOR, "#arrays tr.array-row .bar")),
            "segments": {
                s.get_attribute("class") for s in row.find_elements(By.CSS_SELECTOR, ".bar span")
            },
            "text": row.text,
            "cards": len(d.find_elements(By.CSS_SELECTOR, "#fleet .card")),
        }

    fleet = wait.until(fleet_view)
    assert array_id in fleet["ids"]
    assert fleet["bars"] == fleet["rows"]
    assert fleet["segments"] == {"seg-completed", "seg-failed", "seg-running"}
    assert "70.0 %" in fleet["text"]
    assert fleet["cards"]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "web-ui-fleet.png"))

    def open_row(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).find_elements(By.TAG_NAME, "td")[1].click()
        return True  # anywhere on the row opens it

    wait.until(open_row)
    wait.until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "array"
    )
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg#history-chart polyline"))

    def array_view(d: Any) -> dict[str, Any]:
        line = d.find_element(By.CSS_SELECTOR, "svg#history-chart polyline.series-completed")
        return {
            "points": len(line.get_attribute("points").split()),
            "title": d.find_element(By.ID, "array-title").text,
            "tabs": d.find_element(By.ID, "status-tabs").text,
            "workers": len(d.find_elements(By.CSS_SELECTOR, "#workers tbody tr")),
        }

    array = wait.until(array_view)
    assert array["points"] >= 2
    assert array_id in array["title"]
    assert "running (3)" in array["tabs"]
    assert "failed (1)" in array["tabs"]
    assert array["workers"] == 3  # the running ones, shown first
    browser.save_screenshot(str(ARTEFACTS / "web-ui-array.png"))
    assert (ARTEFACTS / "web-ui-array.png").stat().st_size > 10_000


def test_the_proxy_answers_only_its_own_host(ui: str) -> None:
    port = ui.rstrip("/").rsplit(":", 1)[1]
    with urllib.request.urlopen(f"{ui}api/health", timeout=5) as response:
        assert response.status == 200
    foreign = urllib.request.Request(f"{ui}api/fleet", headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=5)
    assert refused.value.code == 403
