"""jexkv.aio: the KV store and the task queue for asyncio code.

``open_kv`` and ``open_queue`` take the same URLs and options as ``jexkv.open_kv`` and
``jexkv.open_queue`` and return an ``AsyncKVStore`` / ``AsyncTaskQueue``: the same methods as
coroutines (README, "asyncio"). Nothing is opened until the first call, so both are plain
functions, safe anywhere; the event loop is never blocked by jexkv (Redis through an asyncio
client, SQLite in threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jexkv.aio.contracts import AsyncKVStore, AsyncTaskQueue

__all__ = ["AsyncKVStore", "AsyncTaskQueue", "open_kv", "open_queue"]


def open_kv(url: str | None = None, **options: Any) -> AsyncKVStore:
    """The KV store a URL names (``JEXKV_URL`` or ``memory://`` by default), for asyncio
    code; a bad URL or option raises ConfigError here, and nothing is opened yet."""
    from jexkv.urls import open_async_kv

    return open_async_kv(url, **options)


def open_queue(url: str | None = None, **options: Any) -> AsyncTaskQueue:
    """The task queue a URL names, for asyncio code; checked here, opened at first use."""
    from jexkv.urls import open_async_queue

    return open_async_queue(url, **options)


def __getattr__(name: str) -> Any:
    if name in ("AsyncKVStore", "AsyncTaskQueue"):
        from jexkv.aio import contracts

        value = getattr(contracts, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jexkv.aio' has no attribute {name!r}")
