"""`make chaos SEED=…`: replay one seeded fleet history under faults and check the
invariants; exit 1 on any violation (the seed is printed, so it can be replayed)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from chaos.invariants import check, report
from chaos.replay import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default 1)")
    parser.add_argument("--instances", type=int, default=1000, help="at least this many (1000)")
    parser.add_argument(
        "--skip",
        choices=("reconciler", "recount"),
        action="append",
        default=[],
        help="leave a healer out, to see the checker report what it no longer heals",
    )
    parser.add_argument(
        "--alarm-mode",
        choices=("per-instance", "fleet-query"),
        default="per-instance",
        help="ALARM_MODE of the replayed deployment (per-instance)",
    )
    args = parser.parse_args(argv)
    # moto only: fake credentials, never a real endpoint.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "chaos",
            "AWS_SECRET_ACCESS_KEY": "chaos",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    failed = 0
    for seed in args.seed or [1]:
        started = time.monotonic()
        options = Options(
            seed=seed,
            instances=args.instances,
            reconciler="reconciler" not in args.skip,
            recount="recount" not in args.skip,
            alarm_mode=args.alarm_mode,
        )
        _, seen = run(options)
        checks = check(seen)
        print(report(seed, seen, checks))
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        failed += sum(not c.ok for c in checks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
