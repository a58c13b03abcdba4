"""spawn-report: the workers' kit of spawn-fleet-monitor (SPEC §12).

from spawn_report import Reporter

with Reporter() as report:
    report.progress("running", tasks_completed=10, tasks_total=100)
    report.metric("TaskRate", 2.5, unit="Count/Second")
"""

from __future__ import annotations

from spawn_report.exceptions import ReportError
from spawn_report.identity import Identity
from spawn_report.reporter import VERSION, Reporter
from spawn_report.settings import Settings

__version__ = VERSION
__all__ = ["Identity", "ReportError", "Reporter", "Settings", "__version__"]
