"""`make bench`: run every benchmark and print its figures.

Each benchmark module exposes `run() -> list[Figure]`. Every figure is a ratio against
a baseline measured in the same run, or a count (API calls, items read): absolute
timings depend on the machine and are printed only beside their baseline.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from bench.report import Figure

BENCHMARKS = (
    "bench.lifecycle",
    "bench.interruptions",
    "bench.tick",
    "bench.progress",
    "bench.console",
    "bench.worker_kit",
    "bench.logs",
    "bench.burst",
    "bench.cost",
    "bench.cost_per_array",
    "bench.cold_import",
    "bench.load",
)


def main(names: list[str]) -> int:
    instances: int | None = None
    if "--instances" in names:
        # `python -m bench cost --instances N`: the cost model for one fleet size.
        at = names.index("--instances")
        try:
            instances = int(names[at + 1])
        except (IndexError, ValueError):
            print("usage: python -m bench cost --instances N", file=sys.stderr)
            return 2
        names = names[:at] + names[at + 2 :]
    # Benchmarks run on moto only: fake credentials, never a real endpoint.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    names = [n.replace("-", "_") for n in names]  # `cost-per-array` is `bench.cost_per_array`
    selected = [b for b in BENCHMARKS if not names or b.rsplit(".", 1)[1] in names]
    failed = 0
    for name in selected:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        figures: list[Figure] = module.run(instances) if instances else module.run()
        for figure in figures:
            print(f"   {figure}", flush=True)
            failed += 0 if figure.ok else 1
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    print("all targets met" if not failed else f"{failed} figure(s) missed their target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
