"""`make chaos`: a seeded, fault-injecting replay of a fleet's history through the real
handlers, followed by a check of the system's invariants (issue 14).

- `chaos.history`: the fleet's history from a seed (pure).
- `chaos.events`: that history's events in AWS's exact shapes, from `events/`.
- `chaos.faults`: faults at the botocore HTTP layer (quota throttling, 5xx, timeouts,
  crashes) and in delivery (duplicates, reordering, drops, malformed events).
- `chaos.replay`: plays a history on moto in-process through the handlers.
- `chaos.invariants`: what must hold once the replay settled (pure).
"""
