"""`python -m spawn_report`: the same as the `spawn-report` command."""

from spawn_report.cli import run

run()
