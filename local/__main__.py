"""`python -m local`: run the local stack in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from local.stack import REGION, LocalStack, PortBusy, StackConfig, log


def exports(api_endpoint: str, aws_endpoint: str) -> list[str]:
    """The shell lines that point `spawn-monitor` and `spawn-report` at the stack (moto
    takes any credentials; the tools need some, and a region)."""
    return [
        f"export SPAWN_MONITOR_ENDPOINT={api_endpoint}",
        f"export AWS_ENDPOINT_URL={aws_endpoint} AWS_DEFAULT_REGION={REGION} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
    ]


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
    log("to point spawn-monitor and spawn-report at it, paste into another shell:")
    for line in exports(stack.api_endpoint, stack.aws_endpoint):
        print(line, flush=True)
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
