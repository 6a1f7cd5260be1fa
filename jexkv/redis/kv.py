"""RedisKV: the KV contract on a Redis server, each operation a native command.

Rule: values are stored as their JSON text under the namespaced key, so any other
client reads them as it would any JSON cache entry. A store opened without a
``namespace`` keeps its keys under ``DEFAULT_NAMESPACE``, never at the root of the
database: its ``keys()`` and ``clear()`` then see only what jexkv's KV stores wrote,
never a queue's ``bull:…`` keys nor another application's (README, "Sharing one
Redis"). Only an explicit ``namespace=""`` reaches the whole database. TTLs are Redis's own (PX,
PEXPIRE, PTTL), so expiry is exact and counted by the server's clock. Every
operation is one command, one Lua script, or one MULTI/EXEC: atomic on the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jexkv.codec import (
    NX_AND_XX,
    check_amount,
    check_key,
    check_prefix,
    check_ttl,
    decode,
    encode,
)
from jexkv.errors import (
    ClosedError,
    InvalidArgument,
    SerializationError,
    WrongTypeError,
)
from jexkv.namespaces import check_namespace, key_prefix
from jexkv.redis.scripts import kv_script
from jexkv.resp import ServerError
from jexkv.resp.surface import RedisClient

__all__ = ["DEFAULT_NAMESPACE", "RedisKV"]

DEFAULT_NAMESPACE = "jexkv"  # where a store opened without a namespace keeps its keys

_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_SCAN_COUNT = 500


class RedisKV:
    """A KV store on Redis; any number of processes may share one server."""

    def __init__(
        self, client: RedisClient, *, namespace: str = DEFAULT_NAMESPACE, description: str = "redis"
    ) -> None:
        self._client = client
        self._ns = check_namespace(namespace)
        self._prefix = key_prefix(self._ns)  # "<namespace>:", or "" for the whole database
        self._description = description
        self._closed = False
        self._incr = kv_script(client, "kv_incr")
        self._set_many = kv_script(client, "kv_set_many")

    def _key(self, key: object) -> str:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        return self._prefix + check_key(key)

    def _run(self, *args: Any) -> Any:
        return self._client.execute_command(*args)

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        data = self._run("GET", self._key(key))
        return default if data is None else decode(data, key)

    def exists(self, key: str) -> bool:
        return bool(self._run("EXISTS", self._key(key)))

    def ttl_ms(self, key: str) -> int:
        return int(self._run("PTTL", self._key(key)))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        names = {self._key(key): key for key in keys}
        found: dict[str, Any] = {}
        for group in self._client.slot_groups(names):  # one MGET (one slot on a cluster)
            for full, value in zip(group, self._run("MGET", *group)):
                if value is not None:
                    found[names[full]] = decode(value, names[full])
        return found

    def keys(self, prefix: str = "") -> Iterator[str]:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        check_prefix(prefix)
        return self._scan((self._prefix + prefix).translate(_GLOB) + "*")

    def _scan(self, pattern: str) -> Iterator[str]:
        # SCAN may hand out a key twice (while the server rehashes): remember the keys
        # seen, so each one comes back once. Pages are fetched as the caller iterates
        # (on a cluster, every primary in turn).
        seen: set[bytes] = set()
        cut = len(self._prefix)
        for name in self._client.scan_iter(pattern, _SCAN_COUNT):
            if self._closed:
                raise ClosedError(f"this KV store on {self._description} is closed")
            if name not in seen:
                seen.add(name)
                yield name.decode("utf-8")[cut:]

    # -- writes --------------------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        args: list[Any] = ["SET", self._key(key), encode(value)]
        if ttl_ms is not None:
            args += ["PX", check_ttl(ttl_ms)]
        if nx and xx:
            raise InvalidArgument(NX_AND_XX)
        if nx:
            args.append("NX")
        elif xx:
            args.append("XX")
        return self._run(*args) is not None

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        items = {self._key(key): encode(value) for key, value in mapping.items()}
        ttl = 0 if ttl_ms is None else check_ttl(ttl_ms)
        # One script per slot: atomic on one server; on a cluster, atomic per slot.
        for group in self._client.slot_groups(items):
            self._set_many(keys=group, args=[ttl, *(items[full] for full in group)])

    def delete(self, *keys: str) -> int:
        return self._unlink([self._key(key) for key in keys]) if keys else 0

    def expire(self, key: str, ttl_ms: int) -> bool:
        full = self._key(key)
        return bool(self._run("PEXPIRE", full, check_ttl(ttl_ms)))

    def persist(self, key: str) -> bool:
        return bool(self._run("PERSIST", self._key(key)))

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        full = self._key(key)
        check_amount(amount)
        ttl = 0 if ttl_ms is None else check_ttl(ttl_ms)
        try:
            return int(self._incr(keys=[full], args=[amount, ttl]))
        except ServerError as exc:
            if "not an integer" in exc.message or exc.code == "WRONGTYPE":
                raise WrongTypeError(f"incr: the value of {key!r} is not an int") from exc
            raise

    def pop(self, key: str, default: Any = None) -> Any:
        full = self._key(key)
        try:
            data = self._run("GETDEL", full)
        except ServerError as exc:
            if "unknown command" not in exc.message:
                raise
            # A server older than 6.2: GET and DEL in one transaction.
            pipe = self._client.pipeline(transaction=True)
            data = pipe.execute_command("GET", full).execute_command("DEL", full).execute()[0]
        if data is None:
            return default
        try:
            return decode(data, key)
        except SerializationError:
            self._run("SET", full, data, "NX")  # another client's value is not ours to lose
            raise

    def clear(self) -> int:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        removed = 0
        batch: list[str] = []
        for key in self._scan(self._prefix.translate(_GLOB) + "*"):
            batch.append(self._prefix + key)
            if len(batch) >= _SCAN_COUNT:
                removed += self._unlink(batch)
                batch = []
        return removed + (self._unlink(batch) if batch else 0)

    def _unlink(self, names: list[str]) -> int:
        return sum(int(self._run("UNLINK", *group)) for group in self._client.slot_groups(names))

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def __enter__(self) -> RedisKV:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisKV {self._description} namespace={self._ns!r}>"
