"""Everything deployed with the spawn-fleet-monitor Lambda functions."""
