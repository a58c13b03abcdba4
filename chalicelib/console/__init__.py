"""The monitoring console (issue 11): described once as data, applied idempotently.

- `dashboards`, `alarms`, `logs`: dashboards, fleet alarms and anomaly detectors, log
  groups, metric filters, saved queries and the workers' agent config, as data.
- `arrays`: which arrays get a dashboard, and when each finished.
- `description`: all of it for one deployment; `plan`: described vs existing → calls.
- `setup`: the I/O: read, plan, write only the difference.

The list of published metrics they name is `chalicelib.contract.catalog`.
"""
