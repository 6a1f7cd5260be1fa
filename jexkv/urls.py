"""URL -> adapter: the one place that knows every backend.

Rule: everything about a URL and its options is checked here, before any
adapter is built, so that a bad URL raises ConfigError naming the offending
part and creates nothing (no file, no folder, no thread, no connection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from jexkv.contracts import KVStore, TaskQueue
from jexkv.errors import ConfigError
from jexkv.namespaces import check_namespace
from jexkv.resp.url import OPTIONS as REDIS_OPTIONS
from jexkv.resp.url import option_value, redact_url

if TYPE_CHECKING:
    from jexkv.aio.contracts import AsyncKVStore, AsyncTaskQueue

__all__ = ["open_async_kv", "open_async_queue", "open_kv", "open_queue", "parse_url", "redact_url"]


# How an option's value is checked: (name, value, from_query) -> the value to use, or
# ConfigError naming the option.
_Spec = Callable[[str, Any, bool], Any]


def _int(minimum: int, nullable: bool = False) -> _Spec:
    """An int option of at least ``minimum`` (``nullable``: None too, from a keyword)."""

    def check(name: str, value: Any, from_query: bool) -> Any:
        if value is None and nullable and not from_query:
            return None
        if from_query:
            try:
                value = int(value, 10)
            except ValueError:
                raise ConfigError(f"option {name!r} must be an int, got {value!r}") from None
        elif type(value) is not int:
            raise ConfigError(
                f"option {name!r} must be an int, got {type(value).__name__}: {value!r}"
            )
        if value < minimum:
            raise ConfigError(f"option {name!r} must be >= {minimum}, got {value}")
        return value

    return check


def _text(name: str, value: Any, from_query: bool) -> Any:
    if not isinstance(value, str):
        raise ConfigError(f"option {name!r} must be a str, got {type(value).__name__}")
    return value


def _redis_client(name: str, value: Any, from_query: bool) -> Any:
    return option_value(name, value)  # the client's own table and checks (jexkv.resp.url)


_POSITIVE, _COUNT = _int(1), _int(0)

# Options every store takes, then each kind's own, then each adapter's own.
_COMMON: dict[str, _Spec] = {"namespace": _text}
_KIND: dict[str, dict[str, _Spec]] = {
    "kv": {},
    "queue": {
        "lease_ms": _POSITIVE,
        "keep_completed": _COUNT,
        "keep_dead": _int(0, nullable=True),
        "max_stalls": _COUNT,
    },
}
# Options of jexkv's Redis client, on every Redis adapter: its own table.
_REDIS_CLIENT: dict[str, _Spec] = dict.fromkeys(REDIS_OPTIONS, _redis_client)
_ADAPTER: dict[tuple[str, str], dict[str, _Spec]] = {
    ("kv", "memory"): {"purge_interval_ms": _POSITIVE},
    ("kv", "sqlite"): {
        "vacuum_interval_ms": _POSITIVE,
        "vacuum_batch": _POSITIVE,
        "busy_timeout_ms": _POSITIVE,
    },
    ("kv", "redis"): _REDIS_CLIENT,
    ("queue", "memory"): {},
    ("queue", "sqlite"): {"busy_timeout_ms": _POSITIVE},
    ("queue", "redis"): {**_REDIS_CLIENT, "prefix": _text},
}
# The URL schemes of each adapter.
_SCHEMES = {"memory": "memory", "sqlite": "sqlite", "redis": "redis", "rediss": "redis",
            "unix": "redis", "redis+cluster": "redis", "rediss+cluster": "redis",
            "redis+sentinel": "redis"}  # fmt: skip


def _other_half(kind: str, scheme: str) -> dict[str, _Spec]:
    """Options of the other kind (queue for kv, kv for queue) on this adapter: a URL
    that carries them serves both halves (one ``JEXKV_URL``), so the query string may
    hold them; they are checked, then left to the half they belong to."""
    allowed = {**_COMMON, **_KIND[kind], **_ADAPTER[(kind, scheme)]}
    return {
        name: spec
        for other in _KIND
        if other != kind
        for name, spec in {**_KIND[other], **_ADAPTER[(other, scheme)]}.items()
        if name not in allowed
    }


def _options(kind: str, scheme: str, query: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {**_COMMON, **_KIND[kind], **_ADAPTER[(kind, scheme)]}
    other_half = _other_half(kind, scheme)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"malformed query string in URL: {query!r}") from None
    merged: dict[str, Any] = {}
    for source, items in (("query", pairs), ("keyword", list(kwargs.items()))):
        seen: set[str] = set()
        for name, value in items:
            spec = allowed.get(name) or (other_half.get(name) if source == "query" else None)
            if spec is None:
                elsewhere = sorted(
                    f"{s}:// {k}" for (k, s), opts in _ADAPTER.items() if name in opts
                ) + sorted(k for k, opts in _KIND.items() if name in opts)
                hint = f" (it is an option of {', '.join(elsewhere)})" if elsewhere else ""
                raise ConfigError(
                    f"unknown option {name!r} ({source}) for a {scheme}:// {kind}{hint}"
                )
            if name in seen:
                raise ConfigError(f"option {name!r} given twice in the URL")
            seen.add(name)
            value = spec(name, value, source == "query")
            if name in allowed:  # the other half's options are checked, then left to it
                merged[name] = value
    return merged


def parse_url(
    url: str | None, kwargs: Mapping[str, Any], kind: str = "kv"
) -> tuple[str, str, dict[str, Any]]:
    """Split a store URL into (scheme, location, options), checking every part.

    ``location`` is the memory space name ("" for a private one) or the SQLite
    file path. Keyword options win over the query string.
    """
    if url is None:
        url = os.environ.get("JEXKV_URL") or "memory://"
    if not isinstance(url, str):
        raise ConfigError(f"URL must be a str, got {type(url).__name__}")
    if "://" not in url:
        raise ConfigError(
            f"malformed URL {redact_url(url)!r}: expected scheme://…, e.g. sqlite:///app.db"
        )
    try:
        parts: SplitResult | None = urlsplit(url)
    except ValueError:  # its message may quote the password: not kept, not even as context
        parts = None
    if parts is None:
        raise ConfigError(f"malformed URL {redact_url(url)!r}")
    scheme = parts.scheme.lower()
    adapter = _SCHEMES.get(scheme)
    if adapter is None:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigError(
            f"unknown URL scheme {parts.scheme!r} in {redact_url(url)!r} (known: {known})"
        )
    if parts.fragment:
        raise ConfigError(f"URL fragment {parts.fragment!r} is not allowed")
    if adapter == "redis":
        # The client checks host, port, database and TLS settings (jexkv.resp.url).
        location = parts._replace(query="").geturl()
        return adapter, location, _options(kind, adapter, parts.query, kwargs)
    if scheme == "memory":
        if parts.path:
            raise ConfigError(f"memory:// URLs take a name, not a path: {parts.path!r}")
        location = unquote(parts.netloc)
    else:
        if parts.netloc:
            raise ConfigError(
                f"sqlite URLs have no host: {parts.netloc!r} (write sqlite:///relative.db "
                "or sqlite:////absolute/path.db)"
            )
        location = unquote(parts.path[1:])
        if not location:
            raise ConfigError("sqlite URL has no file path (write sqlite:///relative.db)")
        if location == ":memory:":
            raise ConfigError("sqlite:///:memory: is not supported; use memory://")
        if "\x00" in location:
            raise ConfigError("sqlite file path contains a NUL character")
        if location.startswith("~"):  # sqlite:///~/app.db: the user's home, as a shell has it
            expanded = os.path.expanduser(location)
            if expanded.startswith("~"):
                raise ConfigError(
                    f"sqlite file path {location!r}: cannot expand '~' (no such user, or no "
                    "HOME); write the absolute path as sqlite:////absolute/path.db"
                )
            location = expanded
    return scheme, location, _options(kind, scheme, parts.query, kwargs)


def _memory_kv(location: str, options: dict[str, Any]) -> KVStore:
    from jexkv.memory.kv import MemoryKV

    return MemoryKV(location, **options)


def _sqlite_kv(location: str, options: dict[str, Any]) -> KVStore:
    from jexkv.sqlite.kv import SQLiteKV

    return SQLiteKV(location, **options)


def _redis_kv(location: str, options: dict[str, Any]) -> KVStore:
    from jexkv.redis.kv import DEFAULT_NAMESPACE, RedisKV
    from jexkv.resp.connect import client_for_url

    namespace = options.pop("namespace", DEFAULT_NAMESPACE)
    client = client_for_url(location, options)
    return RedisKV(client, namespace=namespace, description=repr(client))


def _memory_queue(location: str, options: dict[str, Any]) -> TaskQueue:
    from jexkv.memory.queue import open_memory_queue

    return open_memory_queue(location, **options)


def _sqlite_queue(location: str, options: dict[str, Any]) -> TaskQueue:
    from jexkv.sqlite.queue import open_sqlite_queue

    return open_sqlite_queue(location, **options)


_KV_FACTORIES: dict[str, Callable[[str, dict[str, Any]], KVStore]] = {
    "memory": _memory_kv,
    "sqlite": _sqlite_kv,
    "redis": _redis_kv,
}


def _redis_queue(location: str, options: dict[str, Any]) -> TaskQueue:
    from jexkv.redis.queue import open_redis_queue

    return open_redis_queue(location, options)


_QUEUE_FACTORIES: dict[str, Callable[[str, dict[str, Any]], TaskQueue]] = {
    "memory": _memory_queue,
    "sqlite": _sqlite_queue,
    "redis": _redis_queue,
}


def open_kv(url: str | None = None, **options: Any) -> KVStore:
    """Open the KV store a URL names; see the README for the URL forms and options."""
    scheme, location, opts = parse_url(url, options, "kv")
    return _KV_FACTORIES[scheme](location, opts)


def open_queue(url: str | None = None, **options: Any) -> TaskQueue:
    """Open the task queue a URL names; see the README for the URL forms and options."""
    scheme, location, opts = parse_url(url, options, "queue")
    return _QUEUE_FACTORIES[scheme](location, opts)


# The asyncio API's adapters (jexkv.aio): the same URLs and options. Nothing that may wait
# opens here: a SQLite file is opened in a thread at the first call, a Redis client connects
# at its first command, so open_kv() and open_queue() never block the loop (a memory store,
# which waits on nothing, holds its space from here on, as the sync one does).


def _sqlite_description(location: str) -> str:
    return f"sqlite:///{os.path.abspath(location)}"


def _memory_kv_async(location: str, options: dict[str, Any]) -> AsyncKVStore:
    from jexkv.aio.kv import OffLoopKV
    from jexkv.offloop import OffLoop

    return OffLoopKV(OffLoop.of(_memory_kv(location, options)), f"memory://{location}")


def _sqlite_kv_async(location: str, options: dict[str, Any]) -> AsyncKVStore:
    from jexkv.aio.kv import OffLoopKV
    from jexkv.offloop import OffLoop

    return OffLoopKV(OffLoop(partial(_sqlite_kv, location, options)), _sqlite_description(location))


def _redis_kv_async(location: str, options: dict[str, Any]) -> AsyncKVStore:
    from jexkv.redis.aio_kv import AsyncRedisKV
    from jexkv.redis.kv import DEFAULT_NAMESPACE
    from jexkv.resp.aio_connect import async_client_for_url

    namespace = options.pop("namespace", DEFAULT_NAMESPACE)
    client = async_client_for_url(location, options)
    return AsyncRedisKV(client, namespace=namespace, description=repr(client))


def _memory_queue_async(location: str, options: dict[str, Any]) -> AsyncTaskQueue:
    from jexkv.aio.queue import AsyncJobQueue
    from jexkv.memory.queue import memory_queue_backend
    from jexkv.offloop import OffLoop
    from jexkv.tasks import OffLoopBackend

    backend, release = memory_queue_backend(location, options.pop("namespace", ""))
    steps = OffLoopBackend(OffLoop.of(backend))
    return AsyncJobQueue(steps, description=f"memory://{location}", on_close=release, **options)


def _sqlite_queue_async(location: str, options: dict[str, Any]) -> AsyncTaskQueue:
    from jexkv.aio.queue import AsyncJobQueue
    from jexkv.offloop import OffLoop
    from jexkv.sqlite.queue import sqlite_queue_backend
    from jexkv.tasks import OffLoopBackend

    build = partial(
        sqlite_queue_backend,
        location,
        options.pop("namespace", ""),
        options.pop("busy_timeout_ms", 10_000),
    )
    steps = OffLoopBackend(OffLoop(build))
    return AsyncJobQueue(steps, description=_sqlite_description(location), **options)


def _redis_queue_async(location: str, options: dict[str, Any]) -> AsyncTaskQueue:
    from jexkv.aio.queue import AsyncJobQueue
    from jexkv.redis.aio_queue import AsyncRedisQueueBackend
    from jexkv.redis.queue import queue_options
    from jexkv.resp.aio_connect import async_client_for_url

    backend_options, queue = queue_options(options)
    client = async_client_for_url(location, options)
    backend = AsyncRedisQueueBackend(client, **backend_options)
    return AsyncJobQueue(backend, description=repr(client), **queue)


_ASYNC_KV_FACTORIES: dict[str, Callable[[str, dict[str, Any]], AsyncKVStore]] = {
    "memory": _memory_kv_async,
    "sqlite": _sqlite_kv_async,
    "redis": _redis_kv_async,
}
_ASYNC_QUEUE_FACTORIES: dict[str, Callable[[str, dict[str, Any]], AsyncTaskQueue]] = {
    "memory": _memory_queue_async,
    "sqlite": _sqlite_queue_async,
    "redis": _redis_queue_async,
}


def open_async_kv(url: str | None = None, **options: Any) -> AsyncKVStore:
    """jexkv.aio.open_kv: the store a URL names, for asyncio code; no I/O yet."""
    scheme, location, opts = parse_url(url, options, "kv")
    if "namespace" in opts:
        check_namespace(opts["namespace"])  # here, not at the first call
    return _ASYNC_KV_FACTORIES[scheme](location, opts)


def open_async_queue(url: str | None = None, **options: Any) -> AsyncTaskQueue:
    """jexkv.aio.open_queue: the task queue a URL names, for asyncio code; no I/O yet."""
    scheme, location, opts = parse_url(url, options, "queue")
    if "namespace" in opts:
        check_namespace(opts["namespace"])
    return _ASYNC_QUEUE_FACTORIES[scheme](location, opts)
