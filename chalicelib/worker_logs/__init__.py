"""Workers' logs as the API reads them: one worker's tail, an array's errors (SPEC §16)."""
