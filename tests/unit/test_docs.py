"""The documentation site builds with --strict, and its reference pages follow the code.

Project modules are reached only through `tools.docs.sources`, the one map of their paths.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.docs import pages, sources

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(out)},
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def text(site: Path, page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))


def test_every_setting_is_on_the_settings_page(site: Path) -> None:
    page = text(site, "settings")
    for setting in sources.settings():
        assert setting.variable in page


def test_every_route_is_on_the_routes_page(site: Path) -> None:
    page = text(site, "reference/routes")
    for path, operations in sources.openapi_document()["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in page


def test_every_command_help_is_on_the_reference_pages(site: Path) -> None:
    for parser, page in (
        (sources.cli_parser(), "reference/cli-help"),
        (sources.kit_parser(), "reference/kit-help"),
    ):
        shown = text(site, page)
        assert f"{parser.prog} --help" in shown
        for command in pages._subcommands(parser):
            assert f"{parser.prog} {command} --help" in shown


def test_no_marker_is_left_unfilled(site: Path) -> None:
    for page in site.rglob("*.html"):
        assert "reference:" not in page.read_text(), page


def test_a_setting_without_a_meaning_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    meanings = dict(pages.SETTING_MEANINGS)
    del meanings["ALARM_MODE"]
    monkeypatch.setattr(pages, "SETTING_MEANINGS", meanings)
    with pytest.raises(pages.ReferenceError, match="ALARM_MODE"):
        pages.settings_table()


def test_the_readme_is_short_and_cites_only_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        assert "SPEC" not in page.read_text(), page
