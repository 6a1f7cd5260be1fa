"""jexkv: a key-value store with TTL and a background task queue, on memory, SQLite or Redis.

The public names are listed in ``__all__``; everything else is internal. They are imported
when first used (PEP 562), so that importing a part of jexkv (``jexkv.resp.protocol``, the
parser alone) loads that part alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jexkv.contracts import KVStore, TaskQueue
    from jexkv.errors import (
        BackendError,
        BackendTimeout,
        BackendUnavailable,
        ClosedError,
        ConfigError,
        InvalidArgument,
        InvalidArgumentType,
        JexkvError,
        JobNotFound,
        JobTimeout,
        ProtocolError,
        SerializationError,
        Unrecoverable,
        WaitTimeout,
        WorkerCrashed,
        WrongTypeError,
    )
    from jexkv.jobs import Backoff, Job
    from jexkv.schedules import Schedule
    from jexkv.urls import open_kv, open_queue

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ClosedError",
    "ConfigError",
    "InvalidArgument",
    "InvalidArgumentType",
    "Job",
    "JobNotFound",
    "JobTimeout",
    "ProtocolError",
    "JexkvError",
    "KVStore",
    "Schedule",
    "SerializationError",
    "TaskQueue",
    "Unrecoverable",
    "WaitTimeout",
    "WorkerCrashed",
    "WrongTypeError",
    "open_kv",
    "open_queue",
]


def __getattr__(name: str) -> Any:
    module: Any
    if name in ("KVStore", "TaskQueue"):
        from jexkv import contracts as module
    elif name in ("Backoff", "Job"):
        from jexkv import jobs as module
    elif name == "Schedule":
        from jexkv import schedules as module
    elif name in ("open_kv", "open_queue"):
        from jexkv import urls as module
    elif name in __all__:
        from jexkv import errors as module
    else:
        raise AttributeError(f"module 'jexkv' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value  # the next lookup finds it at once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
