"""`python -m spawn_monitor`, the same as the `spawn-monitor` console script."""

import sys

from spawn_monitor.cli import main

sys.exit(main())
