"""jexkv: a key-value store with TTL and a background task queue, on memory, SQLite or Redis.

The public names are listed in ``__all__``; everything else is internal.
"""

from jexkv.contracts import KVStore
from jexkv.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ClosedError,
    ConfigError,
    JexkvError,
    SerializationError,
    WrongTypeError,
)
from jexkv.urls import open_kv

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ClosedError",
    "ConfigError",
    "JexkvError",
    "KVStore",
    "SerializationError",
    "WrongTypeError",
    "open_kv",
]
