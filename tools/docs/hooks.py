"""The MkDocs hook (`hooks:` in mkdocs.yml): fills each `<!-- reference: NAME -->` marker.

MkDocs loads this file by path and restores `sys.path` afterwards, so the repository
root is put on it both here (for `tools.docs`) and in `on_config` (for the project
modules `tools.docs.sources` imports while pages are built).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]


def _root_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


_root_on_path()

from tools.docs.pages import SECTIONS  # noqa: E402 - needs the root on sys.path first

MARKER = re.compile(r"^<!-- reference: (?P<name>[a-z -]+) -->$", re.MULTILINE)


def on_config(config: Any) -> Any:
    _root_on_path()
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in SECTIONS:
            raise PluginError(f"{page.file.src_uri}: no generated section {name!r}")
        try:
            return SECTIONS[name]()
        except Exception as exc:
            raise PluginError(f"{page.file.src_uri}: section {name!r}: {exc}") from exc

    return MARKER.sub(fill, markdown)
