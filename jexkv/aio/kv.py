"""OffLoopKV: a sync KV store (memory, SQLite) behind the asyncio contract.

Rules:
* Every call goes through an OffLoop (jexkv/offloop.py): SQLite's store is opened on first
  use and called in threads of its own, so a write that waits on another process's lock
  never blocks the loop; memory's is called inline, where nothing waits.
* The store's own rules hold unchanged (values, TTLs, errors): this class only moves calls
  off the loop. ``keys()`` walks the store's lazy pages in a thread, a page at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from jexkv.codec import check_prefix
from jexkv.contracts import KVStore
from jexkv.errors import ClosedError
from jexkv.offloop import OffLoop

__all__ = ["OffLoopKV"]

_PAGE = 500  # keys fetched per thread hop by keys()


class OffLoopKV:
    """An AsyncKVStore over a sync store; ``description`` names it in reprs and errors."""

    def __init__(self, off: OffLoop[KVStore], description: str) -> None:
        self._off = off
        self._description = description
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        return await self._off.method(name, *args, **kwargs)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._call("get", key, default)

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        return await self._call("set", key, value, ttl_ms=ttl_ms, nx=nx, xx=xx)  # type: ignore[no-any-return]

    async def delete(self, *keys: str) -> int:
        return await self._call("delete", *keys)  # type: ignore[no-any-return]

    async def exists(self, key: str) -> bool:
        return await self._call("exists", key)  # type: ignore[no-any-return]

    async def ttl_ms(self, key: str) -> int:
        return await self._call("ttl_ms", key)  # type: ignore[no-any-return]

    async def expire(self, key: str, ttl_ms: int) -> bool:
        return await self._call("expire", key, ttl_ms)  # type: ignore[no-any-return]

    async def persist(self, key: str) -> bool:
        return await self._call("persist", key)  # type: ignore[no-any-return]

    async def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        return await self._call("incr", key, amount, ttl_ms=ttl_ms)  # type: ignore[no-any-return]

    async def pop(self, key: str, default: Any = None) -> Any:
        return await self._call("pop", key, default)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return await self._call("get_many", keys)  # type: ignore[no-any-return]

    async def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        await self._call("set_many", mapping, ttl_ms=ttl_ms)

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        self._check_open()
        check_prefix(prefix)  # a bad prefix raises here, as the sync keys() does
        return self._keys(prefix)

    async def _keys(self, prefix: str) -> AsyncIterator[str]:
        pages: Iterator[str] = await self._call("keys", prefix)
        while True:
            self._check_open()
            page = await self._off.call(lambda _: list(itertools.islice(pages, _PAGE)))
            for key in page:
                yield key
            if len(page) < _PAGE:
                return

    async def clear(self) -> int:
        return await self._call("clear")  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._off.close(lambda store: store.close())

    async def __aenter__(self) -> OffLoopKV:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<OffLoopKV {self._description}{' closed' if self._closed else ''}>"
