"""The web view's files keep the page's promises: no build step, nothing from another
host, and the API's values put in the page as text only (the browser test checks what
the page shows)."""

from __future__ import annotations

import re

import pytest

from spawn_monitor.ui import STATIC_FILES, static_file


@pytest.mark.parametrize("name", STATIC_FILES)
def test_nothing_is_loaded_from_another_host(name: str) -> None:
    text = static_file(name).decode()
    # The SVG namespace is a name, not a download.
    urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
    assert urls == set(), urls


def test_values_from_the_api_are_never_parsed_as_html() -> None:
    script = static_file("app.js").decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_the_page_loads_only_its_own_files() -> None:
    page = static_file("index.html").decode()
    loaded = set(re.findall(r'(?:src|href)="(/[^"]*)"', page))
    assert loaded == {"/style.css", "/app.js", "/cost.js"}
