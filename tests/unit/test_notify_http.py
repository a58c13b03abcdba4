"""A post's answer, read as what a delivery does next; against a real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from chalicelib.notify.http import PostResult, classify, parse_retry_after, post
from chalicelib.notify.model import HttpRequest


class Scripted(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, str]] | str]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        answer = self.answers.pop(0)
        if answer == "hang":
            threading.Event().wait(3)
            return
        assert not isinstance(answer, str)
        status, headers = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Scripted.bodies = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook/SECRETPART"
    server.shutdown()


def test_each_answer_means_what_it_says(url: str) -> None:
    Scripted.answers = [
        (200, {}),
        (429, {"Retry-After": "7"}),
        (503, {}),
        (404, {}),
        "hang",
    ]
    request = HttpRequest(url, {"Content-Type": "application/json"}, b'{"a":1}')

    results = [post(request, timeout=0.5) for _ in range(5)]

    assert results[0] == PostResult("delivered", 200)
    assert results[1] == PostResult("retry", 429, 7.0, "HTTP 429")
    assert results[2] == PostResult("retry", 503, None, "HTTP 503")
    assert results[3] == PostResult("rejected", 404, None, "HTTP 404")
    assert results[4] == PostResult("retry", None, None, "timed out")
    assert Scripted.bodies == [b'{"a":1}'] * 5
    assert all("SECRETPART" not in (r.error or "") for r in results)


def test_a_refused_connection_is_retried_without_naming_the_url() -> None:
    result = post(HttpRequest("http://127.0.0.1:9/hook/SECRETPART", {}, b"{}"), timeout=0.5)

    assert result.outcome == "retry"
    assert result.status is None
    assert "SECRETPART" not in (result.error or "")


def test_retry_after_is_seconds_or_a_date_and_is_bounded() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Fri, 04 Dec 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("86400") == 900.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert classify(503, "2").retry_after == 2.0
