"""URL -> adapter: the one place that knows every backend.

Rule: everything about a URL and its options is checked here, before any
adapter is built, so that a bad URL raises ConfigError naming the offending
part and creates nothing (no file, no folder, no thread, no connection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from jexkv.contracts import KVStore
from jexkv.errors import ConfigError

__all__ = ["open_kv", "parse_url"]

# Options every adapter takes, then each adapter's own; the value is the type.
_COMMON_OPTIONS: dict[str, type] = {"namespace": str}
_KV_OPTIONS: dict[str, dict[str, type]] = {
    "memory": {"purge_interval_ms": int},
    "sqlite": {"vacuum_interval_ms": int, "vacuum_batch": int, "busy_timeout_ms": int},
}
# Schemes that a later release serves; named here so the error can say so.
_PLANNED = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel")


def _coerce(name: str, value: Any, kind: type, *, from_query: bool) -> Any:
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"option {name!r} must be a str, got {type(value).__name__}")
        return value
    if from_query:
        try:
            value = int(value, 10)
        except ValueError:
            raise ConfigError(f"option {name!r} must be an int, got {value!r}") from None
    elif type(value) is not int:
        raise ConfigError(f"option {name!r} must be an int, got {type(value).__name__}: {value!r}")
    if value <= 0:
        raise ConfigError(f"option {name!r} must be positive, got {value}")
    return value


def _options(scheme: str, query: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {**_COMMON_OPTIONS, **_KV_OPTIONS[scheme]}
    others = {n for s, opts in _KV_OPTIONS.items() if s != scheme for n in opts}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"malformed query string in URL: {query!r}") from None
    merged: dict[str, Any] = {}
    for source, items in (("query", pairs), ("keyword", list(kwargs.items()))):
        seen: set[str] = set()
        for name, value in items:
            if name not in allowed:
                where = f"{scheme}:// URLs" if name in others else "any adapter"
                raise ConfigError(f"unknown option {name!r} ({source}) for {where}")
            if name in seen:
                raise ConfigError(f"option {name!r} given twice in the URL")
            seen.add(name)
            merged[name] = _coerce(name, value, allowed[name], from_query=source == "query")
    return merged


def parse_url(url: str | None, kwargs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Split a store URL into (scheme, location, options), checking every part.

    ``location`` is the memory space name ("" for a private one) or the SQLite
    file path. Keyword options win over the query string.
    """
    if url is None:
        url = os.environ.get("JEXKV_URL") or "memory://"
    if not isinstance(url, str):
        raise ConfigError(f"URL must be a str, got {type(url).__name__}")
    if "://" not in url:
        raise ConfigError(f"malformed URL {url!r}: expected scheme://…, e.g. sqlite:///app.db")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"malformed URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in _PLANNED:
        raise ConfigError(f"the {scheme}:// adapter is not available yet in this jexkv release")
    if scheme not in _KV_OPTIONS:
        known = ", ".join(f"{s}://" for s in sorted(_KV_OPTIONS))
        raise ConfigError(f"unknown URL scheme {parts.scheme!r} in {url!r} (known: {known})")
    if parts.fragment:
        raise ConfigError(f"URL fragment {parts.fragment!r} is not allowed")
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
    return scheme, location, _options(scheme, parts.query, kwargs)


def _memory_kv(location: str, options: dict[str, Any]) -> KVStore:
    from jexkv.memory.kv import MemoryKV

    return MemoryKV(location, **options)


def _sqlite_kv(location: str, options: dict[str, Any]) -> KVStore:
    from jexkv.sqlite.kv import SQLiteKV

    return SQLiteKV(location, **options)


_KV_FACTORIES: dict[str, Callable[[str, dict[str, Any]], KVStore]] = {
    "memory": _memory_kv,
    "sqlite": _sqlite_kv,
}


def open_kv(url: str | None = None, **options: Any) -> KVStore:
    """Open the KV store a URL names; see the README for the URL forms and options."""
    scheme, location, opts = parse_url(url, options)
    return _KV_FACTORIES[scheme](location, opts)
