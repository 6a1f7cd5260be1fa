"""RedisKV: the KV contract on Redis over the sync client; the operations are kv_ops.py's.

Rule: each call runs one operation of ``KVOps`` over the client, sending what it yields and
sending back the replies (or throwing the errors in); ``keys()`` and ``clear()`` scan the
namespace's keys page by page as the caller iterates (on a cluster, every primary in turn).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jexkv.redis.kv_ops import DEFAULT_NAMESPACE, SCAN_COUNT, KVOps
from jexkv.redis.programs import Program, T, run
from jexkv.redis.scripts import KV_NAMES, kv_script
from jexkv.resp.surface import RedisClient

__all__ = ["DEFAULT_NAMESPACE", "RedisKV"]


class RedisKV:
    """A KV store on Redis; any number of processes may share one server."""

    def __init__(
        self, client: RedisClient, *, namespace: str = DEFAULT_NAMESPACE, description: str = "redis"
    ) -> None:
        self._client = client
        self._ops = KVOps(namespace, client.slot_groups, description)
        self._scripts = {name: kv_script(client, name) for name in KV_NAMES}

    def _run(self, ops: Program[T]) -> T:
        return run(ops, self._client, self._scripts)

    # -- the contract --------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self._run(self._ops.get(key, default))

    def exists(self, key: str) -> bool:
        return self._run(self._ops.exists(key))

    def ttl_ms(self, key: str) -> int:
        return self._run(self._ops.ttl_ms(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return self._run(self._ops.get_many(keys))

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        return self._run(self._ops.set(key, value, ttl_ms, nx, xx))

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        self._run(self._ops.set_many(mapping, ttl_ms))

    def delete(self, *keys: str) -> int:
        return self._run(self._ops.delete(keys)) if keys else 0

    def expire(self, key: str, ttl_ms: int) -> bool:
        return self._run(self._ops.expire(key, ttl_ms))

    def persist(self, key: str) -> bool:
        return self._run(self._ops.persist(key))

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        return self._run(self._ops.incr(key, amount, ttl_ms))

    def pop(self, key: str, default: Any = None) -> Any:
        return self._run(self._ops.pop(key, default))

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self._scan(self._ops.pattern(prefix))

    def _scan(self, pattern: str) -> Iterator[str]:
        # SCAN may hand out a key twice (while the server rehashes): each comes back once.
        seen: set[bytes] = set()
        for name in self._client.scan_iter(pattern, SCAN_COUNT):
            self._ops.check_open()
            if name not in seen:
                seen.add(name)
                yield self._ops.unprefixed(name)

    def clear(self) -> int:
        removed = 0
        batch: list[str] = []
        for key in self._scan(self._ops.pattern()):
            batch.append(self._ops.prefix + key)
            if len(batch) >= SCAN_COUNT:
                removed += self._run(self._ops.unlink(batch))
                batch = []
        return removed + (self._run(self._ops.unlink(batch)) if batch else 0)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        if not self._ops.closed:
            self._ops.closed = True
            self._client.close()

    def __enter__(self) -> RedisKV:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisKV {self._ops.description} namespace={self._ops.namespace!r}>"
