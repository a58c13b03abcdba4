"""spawn-monitor: the operators' CLI and local web view of spawn-fleet-monitor (SPEC §11)."""

__version__ = "0.1.0"
