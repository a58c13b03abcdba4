"""A local stand-in for Slack, Teams, Discord and a generic webhook: records each POST.

`make run` starts one (`SFM_WEBHOOK_PORT`, default 8025) and points the default local
destinations at it, one path per destination: `POST /{kind}/{name}`. Each body is kept
as the service would get it (`received`), and a generic webhook's signature is checked
with its key. Tests script answers per path, to play a service that throttles, fails
or hangs:

    >>> receiver = WebhookReceiver(port=0, keys={"local-webhook": KEY}); receiver.start()
    >>> receiver.script("slack", "ops", [Answer(429, retry_after="1"), Answer(500)])
    >>> receiver.url("slack", "ops")
    'http://127.0.0.1:50123/slack/ops'
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.notify.render import (
    NOTICE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a status (with `Retry-After`), or a hang of `hang` seconds
    before answering 200 (longer than the sender's timeout: it gives up first)."""

    status: int = 200
    retry_after: str | None = None
    hang: float = 0.0


@dataclass(frozen=True)
class Received:
    """One POST as it arrived.

    Attributes:
        kind, name: the path's parts (`/slack/ops` -> `slack`, `ops`).
        body: the JSON body.
        headers: the request's headers.
        status: what was answered (None: the sender gave up while it hung).
        verified: for a generic webhook, whether the signature and timestamp held.
        at: when it arrived (epoch seconds).
    """

    kind: str
    name: str
    body: Any
    headers: dict[str, str]
    status: int | None
    verified: bool | None
    at: float

    @property
    def notice_id(self) -> str | None:
        return self.headers.get(NOTICE_HEADER)


@dataclass
class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that records what each destination received.

    Args:
        port: where to listen (0: any free port).
        keys: generic webhooks' signing keys by destination name.
        on_receive: called with each POST answered 2xx (the local stack prints a line).
    """

    port: int = 0
    keys: dict[str, str] = field(default_factory=dict)
    on_receive: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self.received: list[Received] = []
        self.unanswered: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, kind: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{name}"

    def script(self, kind: str, name: str, answers: list[Answer]) -> None:
        """The next answers for `/{kind}/{name}`, in order; then 200 again."""
        with self._lock:
            self._scripts[(kind, name)].extend(answers)

    def delivered(self, kind: str | None = None, name: str | None = None) -> list[Received]:
        """The POSTs answered 2xx, of one destination if named."""
        with self._lock:
            return [
                r
                for r in self.received
                if r.status is not None
                and 200 <= r.status < 300
                and (kind is None or r.kind == kind)
                and (name is None or r.name == name)
            ]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = request.path.strip("/").split("/")
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        if len(parts) != 2:
            request.send_error(404)
            return
        kind, name = parts
        with self._lock:
            queue = self._scripts.get((kind, name))
            answer = queue.popleft() if queue else Answer()
        headers = {k: v for k, v in request.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        verified = None
        if kind == "webhook":
            key = self.keys.get(name)
            verified = key is not None and verify_signature(
                key,
                headers.get(TIMESTAMP_HEADER, ""),
                raw,
                headers.get(SIGNATURE_HEADER, ""),
                time.time(),
            )
        at = time.time()
        if answer.hang:
            # The sender times out first; it does not learn whether this arrived.
            self._stop.wait(answer.hang)
            with self._lock:
                self.unanswered.append(Received(kind, name, body, headers, None, verified, at))
            return
        status = answer.status
        if kind == "webhook" and not verified:
            status = 401
        record = Received(kind, name, body, headers, status, verified, at)
        with self._lock:
            self.received.append(record)
        request.send_response(status)
        if answer.retry_after is not None:
            request.send_header("Retry-After", answer.retry_after)
        request.send_header("Content-Type", "text/plain")
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok" if 200 <= status < 300 else b"no")
        if 200 <= status < 300 and self.on_receive is not None:
            self.on_receive(record)
