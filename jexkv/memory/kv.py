"""MemoryKV: the KV contract over a MemorySpace, in this process only.

Rule: writes take the space's lock; reads do not (one dict lookup is atomic)
and treat an entry past its expiry as absent, so expiry is exact whether or
not the purge thread has run. Values are frozen on the way in and thawed on
the way out (see codec.freeze), so callers never share objects with the store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jexkv.clock import steady_ms
from jexkv.codec import (
    NX_AND_XX,
    check_amount,
    check_key,
    check_prefix,
    check_ttl,
    freeze,
    thaw,
)
from jexkv.errors import ClosedError, InvalidArgument, WrongTypeError
from jexkv.memory import space as spaces
from jexkv.namespaces import check_namespace

__all__ = ["MemoryKV"]

_heappush = heapq.heappush


class MemoryKV:
    """A KV store in this process; ``memory://NAME`` shares one space by name."""

    def __init__(self, name: str = "", *, namespace: str = "", purge_interval_ms: int = 1000):
        self._name = name
        # Each namespace of a named space has a space of its own: they never meet.
        self._ns = check_namespace(namespace)
        self._space = spaces.acquire(name, self._ns, purge_interval_ms)
        self._data = self._space.data
        self._closed = False

    # -- helpers ---------------------------------------------------------------------

    def _key(self, key: object) -> str:
        if self._closed:
            raise ClosedError("this KV store is closed")
        return check_key(key)

    def _live(self, full: str, now: int) -> tuple[Any, int | None] | None:
        entry = self._data.get(full)
        if entry is None or (entry[1] is not None and entry[1] <= now):
            return None
        return entry

    def _put(self, full: str, stored: Any, expires_at: int | None) -> None:
        """Write one entry; call with the lock held."""
        self._data[full] = (stored, expires_at)
        if expires_at is not None:
            space = self._space
            _heappush(space.heap, (expires_at, full))
            if len(space.heap) > space.heap_limit or space.purge_thread is None:
                space.note_expiry()

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._data.get(self._key(key))
        if entry is None:
            return default
        stored, expires_at = entry
        if expires_at is not None and expires_at <= steady_ms():
            return default
        return thaw(stored)

    def exists(self, key: str) -> bool:
        return self._live(self._key(key), steady_ms()) is not None

    def ttl_ms(self, key: str) -> int:
        now = steady_ms()
        entry = self._live(self._key(key), now)
        if entry is None:
            return -2
        return -1 if entry[1] is None else entry[1] - now

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        fulls = [(key, self._key(key)) for key in keys]
        now = steady_ms()
        found = {}
        for key, full in fulls:
            entry = self._live(full, now)
            if entry is not None:
                found[key] = thaw(entry[0])
        return found

    def keys(self, prefix: str = "") -> Iterator[str]:
        if self._closed:
            raise ClosedError("this KV store is closed")
        check_prefix(prefix)
        return self._iter_keys(prefix)

    def _iter_keys(self, start: str) -> Iterator[str]:
        # A snapshot of the key references (the values stay where they are), so that
        # writers may go on while the caller iterates; liveness is checked per key.
        with self._space.lock:
            snapshot = [k for k in self._data if k.startswith(start)]
        for key in snapshot:
            if self._closed:
                raise ClosedError("this KV store is closed")
            if self._live(key, steady_ms()) is not None:
                yield key

    # -- writes ----------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        # The hot path of the library: checks and heap work are inlined on purpose.
        if self._closed:
            raise ClosedError("this KV store is closed")
        if type(key) is not str or not key or not key.isascii():
            key = check_key(key)
        full = key
        stored = freeze(value)
        space = self._space
        if ttl_ms is None:
            expires_at = None
        else:
            if type(ttl_ms) is not int or ttl_ms <= 0:
                check_ttl(ttl_ms)
            expires_at = steady_ms() + ttl_ms
        with space.lock:
            if nx or xx:
                if nx and xx:
                    raise InvalidArgument(NX_AND_XX)
                if (self._live(full, steady_ms()) is None) != nx:
                    return False
            self._data[full] = (stored, expires_at)
            if expires_at is not None:
                heap = space.heap
                _heappush(heap, (expires_at, full))
                if len(heap) > space.heap_limit or space.purge_thread is None:
                    space.note_expiry()
        return True

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        items = [(self._key(key), freeze(value)) for key, value in mapping.items()]
        expires_at = None if ttl_ms is None else steady_ms() + check_ttl(ttl_ms)
        with self._space.lock:
            self._check_open()
            for full, stored in items:
                self._put(full, stored, expires_at)

    def delete(self, *keys: str) -> int:
        fulls = [self._key(key) for key in keys]
        removed = 0
        with self._space.lock:
            self._check_open()
            now = steady_ms()
            for full in fulls:
                entry = self._data.pop(full, None)
                if entry is not None and (entry[1] is None or entry[1] > now):
                    removed += 1
        return removed

    def expire(self, key: str, ttl_ms: int) -> bool:
        full = self._key(key)
        ttl = check_ttl(ttl_ms)
        with self._space.lock:
            self._check_open()
            now = steady_ms()
            entry = self._live(full, now)
            if entry is None:
                return False
            self._put(full, entry[0], now + ttl)
        return True

    def persist(self, key: str) -> bool:
        full = self._key(key)
        with self._space.lock:
            self._check_open()
            entry = self._live(full, steady_ms())
            if entry is None or entry[1] is None:
                return False
            self._data[full] = (entry[0], None)
        return True

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        full = self._key(key)
        check_amount(amount)
        ttl = None if ttl_ms is None else check_ttl(ttl_ms)
        with self._space.lock:
            self._check_open()
            now = steady_ms()
            entry = self._live(full, now)
            if entry is None:
                self._put(full, amount, None if ttl is None else now + ttl)
                return amount
            current = entry[0]
            if type(current) is not int:
                raise WrongTypeError(f"incr: the value of {key!r} is not an int")
            value = current + amount
            self._data[full] = (value, entry[1])
            return value

    def pop(self, key: str, default: Any = None) -> Any:
        full = self._key(key)
        with self._space.lock:
            self._check_open()
            entry = self._data.pop(full, None)
        if entry is None or (entry[1] is not None and entry[1] <= steady_ms()):
            return default
        return thaw(entry[0])

    def clear(self) -> int:
        with self._space.lock:
            self._check_open()
            now = steady_ms()
            data = self._data
            removed = sum(1 for _, exp in data.values() if exp is None or exp > now)
            data.clear()
            self._space.heap.clear()
        return removed

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this KV store is closed")

    def close(self) -> None:
        with self._space.lock:
            if self._closed:
                return
            self._closed = True
        spaces.release(self._name, self._ns, self._space)

    def __enter__(self) -> MemoryKV:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"memory://{self._name}" if self._name else "memory://"
        state = " closed" if self._closed else ""
        return f"<MemoryKV {where} namespace={self._ns!r}{state}>"
