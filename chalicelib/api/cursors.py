"""Opaque, tamper-evident pagination cursors for the HTTP API.

A cursor is `base64url(JSON {key, scope}) "." base64url(HMAC-SHA256)`: the key is where
a listing resumes, the scope (route, array id, filter) keeps it from being replayed on
another listing, and the MAC keeps clients from forging a start key. Opaque by
contract, not encrypted: not secret.

Example:
    >>> codec = CursorCodec(b"secret")
    >>> codec.decode(codec.encode({"task_index": "42"}, scope="w:a"), scope="w:a")
    {'task_index': '42'}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

# Far longer than any cursor this API makes; anything longer is not worth parsing.
CURSOR_MAX = 1024


class InvalidCursor(ValueError):
    """The cursor is malformed, altered, or was made for another listing."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


class CursorCodec:
    """Makes and checks cursors.

    Args:
        secret: the HMAC key; every process serving the API must share it, or a cursor
            from one would fail on another.
    """

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("cursor secret must not be empty")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def encode(self, key: Mapping[str, Any], scope: str) -> str:
        """A cursor resuming at `key` within `scope`."""
        payload = json.dumps(
            {"key": dict(key), "scope": scope}, separators=(",", ":"), sort_keys=True
        ).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def decode(self, token: str, scope: str) -> dict[str, Any]:
        """The key inside a cursor made by `encode` for the same `scope`.

        Raises:
            InvalidCursor: for anything else.
        """
        if not isinstance(token, str) or not token.isascii() or len(token) > CURSOR_MAX:
            raise InvalidCursor("cursor is not a cursor this API made")
        body, _, mac = token.partition(".")
        try:
            payload, signature = _b64decode(body), _b64decode(mac)
        except (binascii.Error, ValueError):
            raise InvalidCursor("cursor is not a cursor this API made") from None
        # base64 decoding skips stray characters; only the exact encoding is accepted.
        if _b64encode(payload) != body or _b64encode(signature) != mac:
            raise InvalidCursor("cursor is not a cursor this API made")
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidCursor("cursor is not a cursor this API made")
        try:
            document = json.loads(payload)
        except ValueError:
            raise InvalidCursor("cursor is not a cursor this API made") from None
        if not isinstance(document, dict) or not isinstance(document.get("key"), dict):
            raise InvalidCursor("cursor is not a cursor this API made")
        if document.get("scope") != scope:
            raise InvalidCursor("cursor belongs to another listing")
        return document["key"]  # type: ignore[no-any-return]
