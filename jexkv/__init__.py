"""jexkv: a key-value store with TTL and a background task queue, on memory, SQLite or Redis.

The public names are listed in ``__all__``; everything else is internal.
"""

from jexkv.contracts import KVStore, TaskQueue
from jexkv.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ClosedError,
    ConfigError,
    JexkvError,
    ProtocolError,
    SerializationError,
    Unrecoverable,
    WrongTypeError,
)
from jexkv.jobs import Backoff, Job
from jexkv.urls import open_kv, open_queue

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ClosedError",
    "ConfigError",
    "Job",
    "ProtocolError",
    "JexkvError",
    "KVStore",
    "SerializationError",
    "TaskQueue",
    "Unrecoverable",
    "WrongTypeError",
    "open_kv",
    "open_queue",
]
