"""AsyncRedisKV: the KV contract on Redis for asyncio, over the asyncio client; the operations
are kv_ops.py's, the same as RedisKV's: only the I/O differs (no thread is used)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from jexkv.redis.kv_ops import DEFAULT_NAMESPACE, SCAN_COUNT, KVOps
from jexkv.redis.programs import Program, T, run_async
from jexkv.redis.scripts import KV_NAMES, source
from jexkv.resp.surface import AsyncRedisClient

__all__ = ["AsyncRedisKV"]


class AsyncRedisKV:
    """A KV store on Redis for asyncio code; any number of processes may share one server."""

    def __init__(
        self,
        client: AsyncRedisClient,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        description: str = "redis",
    ) -> None:
        self._client = client
        self._ops = KVOps(namespace, client.slot_groups, description)
        self._scripts = {name: client.register_script(source(name)) for name in KV_NAMES}

    async def _run(self, ops: Program[T]) -> T:
        return await run_async(ops, self._client, self._scripts)

    # -- the contract --------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._run(self._ops.get(key, default))

    async def exists(self, key: str) -> bool:
        return await self._run(self._ops.exists(key))

    async def ttl_ms(self, key: str) -> int:
        return await self._run(self._ops.ttl_ms(key))

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return await self._run(self._ops.get_many(keys))

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        return await self._run(self._ops.set(key, value, ttl_ms, nx, xx))

    async def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        await self._run(self._ops.set_many(mapping, ttl_ms))

    async def delete(self, *keys: str) -> int:
        return await self._run(self._ops.delete(keys)) if keys else 0

    async def expire(self, key: str, ttl_ms: int) -> bool:
        return await self._run(self._ops.expire(key, ttl_ms))

    async def persist(self, key: str) -> bool:
        return await self._run(self._ops.persist(key))

    async def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        return await self._run(self._ops.incr(key, amount, ttl_ms))

    async def pop(self, key: str, default: Any = None) -> Any:
        return await self._run(self._ops.pop(key, default))

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        return self._scan(self._ops.pattern(prefix))

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        seen: set[bytes] = set()  # SCAN may hand out a key twice: each comes back once
        async for name in self._client.scan_iter(pattern, SCAN_COUNT):
            self._ops.check_open()
            if name not in seen:
                seen.add(name)
                yield self._ops.unprefixed(name)

    async def clear(self) -> int:
        removed = 0
        batch: list[str] = []
        async for key in self._scan(self._ops.pattern()):
            batch.append(self._ops.prefix + key)
            if len(batch) >= SCAN_COUNT:
                removed += await self._run(self._ops.unlink(batch))
                batch = []
        return removed + (await self._run(self._ops.unlink(batch)) if batch else 0)

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        if not self._ops.closed:
            self._ops.closed = True
            await self._client.aclose()

    async def __aenter__(self) -> AsyncRedisKV:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncRedisKV {self._ops.description} namespace={self._ops.namespace!r}>"
