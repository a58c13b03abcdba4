"""The documentation site's build hook: reference pages written from the code (not deployed).

`sources.py` is the one place that imports project modules; `pages.py` renders them as
Markdown; `hooks.py` is what `mkdocs.yml` loads.
"""
