"""`spawn-monitor ui`: a local web view that proxies and signs the API (as `kubectl proxy`).

It serves on 127.0.0.1 only: the page (plain HTML, CSS and JS from this package, no
build step, no CDN) and `/api/...`, which it forwards as GET requests to the API,
signed with the operator's AWS credentials when the target is a deployed stage. The
browser never holds credentials. Because a page from any other site could reach a
loopback port through DNS rebinding, requests whose Host is not this server's own
loopback name are refused; only GET is served. A browser that drops a connection (a
closed tab, a reload mid-request) ends that request quietly, without a traceback.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from spawn_monitor.api import Api, ApiError

STATIC_FILES = ("index.html", "app.js", "cost.js", "style.css")
# What writing to a connection the browser has dropped raises.
DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
API_PREFIX = "/api/"


def static_file(name: str) -> bytes:
    return resources.files("spawn_monitor").joinpath("static", name).read_bytes()


class UiServer(ThreadingHTTPServer):
    """The web view's HTTP server; `api` is the proxied API, `refresh` the page's period."""

    daemon_threads = True

    def __init__(self, port: int, api: Api, refresh: float) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.api = api
        self.refresh = refresh

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A dropped connection is the browser's choice, not an error; others print."""
        if isinstance(sys.exc_info()[1], DROPPED):
            return
        super().handle_error(request, client_address)

    def allowed_hosts(self) -> set[str]:
        port = self.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}"}


class Handler(BaseHTTPRequestHandler):
    server: UiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown the console."""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def do_GET(self) -> None:
        if self.headers.get("Host", "") not in self.server.allowed_hosts():
            self._json(HTTPStatus.FORBIDDEN, {"Code": "Forbidden", "Message": "unexpected Host"})
            return
        path = urlsplit(self.path).path
        if path.startswith(API_PREFIX):
            self._proxy(self.path[len(API_PREFIX) - 1 :])
        elif path == "/ui-config.json":
            api = self.server.api
            self._json(
                200,
                {
                    "endpoint": api.target.endpoint,
                    "signed": api.target.sign,
                    "refresh_seconds": self.server.refresh,
                },
            )
        elif path in ("/", "/index.html") or path.lstrip("/") in STATIC_FILES:
            name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._send(200, static_file(name), f"{kind}; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"Code": "NotFound", "Message": f"no page {path}"})

    def _proxy(self, api_path: str) -> None:
        try:
            status, body = self.server.api.fetch(api_path)
        except ApiError as exc:
            self._json(HTTPStatus.BAD_GATEWAY, {"Code": "BadGateway", "Message": str(exc)})
            return
        self._send(status, body, "application/json")


def serve(api: Api, port: int, refresh: float) -> int:
    """Serve until interrupted (Ctrl-C: the caller exits 130)."""
    try:
        server = UiServer(port, api, refresh)
    except OSError as exc:
        raise ApiError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; try --port") from None
    signed = "signed with your AWS credentials" if api.target.sign else "unsigned"
    # Plain print, flushed: scripts and tests read the URL from a pipe.
    print(
        f"spawn-monitor ui: {server.url}  (proxying {api.target.endpoint}, {signed}; Ctrl-C stops)",
        flush=True,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        thread.join()
    finally:
        server.shutdown()
        server.server_close()
    return 0
