"""Chat notifications (SPEC §17): destinations, rollup, array reports, delivery."""
