"""One lock around moto's DynamoDB table operations, in the local stack's process.

moto's `transact_write_items` deep-copies each table it touches (to roll back a failed
transaction) while other request threads of the same server write to that table; the
copy then fails with "dictionary changed size during iteration", a 500 and a long
traceback on the console (the caller's retry succeeds). DynamoDB itself serializes
conflicting writes; here the operations that read or change a table's items take one
lock, so a transaction's copy never sees a table change under it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

SERIALIZED = (
    "transact_write_items",
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
)
_lock = threading.RLock()
_MARK = "_spawn_serialized"


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked


def serialize_dynamodb() -> None:
    """Wrap the table operations of moto's DynamoDB backend in the lock (idempotent)."""
    for name in SERIALIZED:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, _MARK, False):
            setattr(DynamoDBBackend, name, _serialized(method))
