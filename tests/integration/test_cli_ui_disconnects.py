"""`spawn-monitor ui` when the browser drops a connection (a closed tab, a reload while
a request is in flight): the server goes on, and its console shows no traceback."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(sys.executable).parent / "spawn-monitor"


class SlowApi(BaseHTTPRequestHandler):
    """An API that answers after the browser has gone."""

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(0.5)
        body = b'{"instances": {}}' * 4096
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def ui() -> Iterator[tuple[subprocess.Popen[str], int]]:
    api = ThreadingHTTPServer(("127.0.0.1", 0), SlowApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPAWN_MONITOR"))},
        "SPAWN_MONITOR_ENDPOINT": f"http://127.0.0.1:{api.server_address[1]}",
    }
    process = subprocess.Popen(  # noqa: S603 - this checkout's console script
        [str(SCRIPT), "ui", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
    yield process, port
    if process.poll() is None:
        process.kill()
    api.shutdown()
    api.server_close()


def drop(port: int, path: str) -> None:
    """Send a request, then reset the connection before the answer (SO_LINGER 0)."""
    with socket.create_connection(("127.0.0.1", port)) as browser:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        browser.sendall(request.encode())
        browser.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_dropped_connections_leave_no_traceback_and_the_server_goes_on(
    ui: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = ui
    for _ in range(3):
        drop(port, "/api/fleet")
    time.sleep(1.5)  # the slow API has answered; the ui has written to the reset sockets

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-config.json", timeout=5) as page:
        assert page.status == 200  # still serving

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr
    assert "ConnectionResetError" not in stderr
