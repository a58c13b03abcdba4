"""`python -m local`: run the local stack in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from local.stack import LocalStack, PortBusy, StackConfig, log


def main() -> int:
    config = StackConfig.from_env()
    stack = LocalStack(config)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except PortBusy as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    log(f"AWS endpoint (moto): {stack.aws_endpoint}   e.g. AWS_ENDPOINT_URL={stack.aws_endpoint}")
    log(f"HTTP API:            {stack.api_endpoint}   try: curl {stack.api_endpoint}/health")
    log(
        f"scheduled functions every {config.tick_seconds:g}s; simulated fleet "
        f"{'on' if config.simulate else 'off (SFM_SIMULATE=0)'}; Ctrl-C stops everything"
    )
    # Wake now and then: a signal that lands on another thread only runs its Python
    # handler once the main thread runs again.
    while not stopping.wait(0.5):
        pass
    log("stopping ...")
    stack.stop()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
