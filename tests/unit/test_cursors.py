"""Pagination cursors: round trip, bound to their listing, tamper-evident."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.api.cursors import CursorCodec, InvalidCursor

SCOPE = "workers:render-20260127-a1b2c3:running"


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec(b"test-secret")


def test_round_trip(codec: CursorCodec) -> None:
    token = codec.encode({"task_index": "42"}, SCOPE)
    assert codec.decode(token, SCOPE) == {"task_index": "42"}
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_a_cursor_for_one_listing_is_refused_by_another(codec: CursorCodec) -> None:
    token = codec.encode({"task_index": "42"}, SCOPE)
    with pytest.raises(InvalidCursor, match="another listing"):
        codec.decode(token, "workers:other-array:running")


def test_a_cursor_signed_with_another_secret_is_refused(codec: CursorCodec) -> None:
    token = CursorCodec(b"other-secret").encode({"task_index": "42"}, SCOPE)
    with pytest.raises(InvalidCursor):
        codec.decode(token, SCOPE)


def test_a_rewritten_payload_is_refused(codec: CursorCodec) -> None:
    token = codec.encode({"task_index": "42"}, SCOPE)
    _, mac = token.split(".")
    forged = json.dumps({"key": {"task_index": "0"}, "scope": SCOPE}).encode()
    forged_body = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        codec.decode(f"{forged_body}.{mac}", SCOPE)


def test_every_single_character_change_is_refused(codec: CursorCodec) -> None:
    token = codec.encode({"array_id": "render-1"}, "arrays")
    for position in range(len(token)):
        for replacement in ("A", "_", "!"):
            if token[position] == replacement:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidCursor):
                codec.decode(altered, "arrays")


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "a.b.c", "é.x", "x" * 5000, "%%%.%%%", "e30.", "e30.AAAA"]
)
def test_garbage_is_refused(codec: CursorCodec, token: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(token, SCOPE)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        CursorCodec(b"")
