"""RedisKV: the KV contract on a Redis server, each operation a native command.

Rule: values are stored as their JSON text under the namespaced key, so any other
client reads them as it would any JSON cache entry; TTLs are Redis's own (PX,
PEXPIRE, PTTL), so expiry is exact and counted by the server's clock. Every
operation is one command, one Lua script, or one MULTI/EXEC: atomic on the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jexkv.codec import check_amount, check_key, check_ttl, decode, encode
from jexkv.errors import ClosedError, WrongTypeError
from jexkv.resp import Redis, ServerError

__all__ = ["RedisKV"]

# INCRBY, then a TTL only when this call created the key (a fixed window).
_INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_SCAN_COUNT = 500


def _value(data: Any) -> Any:
    return decode(data.decode("utf-8")) if isinstance(data, bytes) else data


class RedisKV:
    """A KV store on Redis; any number of processes may share one server."""

    def __init__(self, client: Redis, *, namespace: str = "", description: str = "redis") -> None:
        self._client = client
        self._ns = namespace
        self._description = description
        self._closed = False
        self._incr = client.register_script(_INCR)

    def _key(self, key: object) -> str:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        return self._ns + check_key(key)

    def _run(self, *args: Any) -> Any:
        return self._client.execute_command(*args)

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        data = self._run("GET", self._key(key))
        return default if data is None else _value(data)

    def exists(self, key: str) -> bool:
        return bool(self._run("EXISTS", self._key(key)))

    def ttl_ms(self, key: str) -> int:
        return int(self._run("PTTL", self._key(key)))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        names = [(key, self._key(key)) for key in keys]
        if not names:
            return {}
        values = self._run("MGET", *(full for _, full in names))
        return {key: _value(v) for (key, _), v in zip(names, values) if v is not None}

    def keys(self, prefix: str = "") -> Iterator[str]:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        return self._scan((self._ns + prefix).translate(_GLOB) + "*")

    def _scan(self, pattern: str) -> Iterator[str]:
        # SCAN may hand out a key twice (while the server rehashes): remember the keys
        # seen, so each one comes back once. Pages are fetched as the caller iterates.
        seen: set[bytes] = set()
        cut = len(self._ns)
        cursor = b"0"
        while True:
            if self._closed:
                raise ClosedError(f"this KV store on {self._description} is closed")
            cursor, names = self._run("SCAN", cursor, "MATCH", pattern, "COUNT", _SCAN_COUNT)
            for name in names:
                if name not in seen:
                    seen.add(name)
                    yield name.decode("utf-8")[cut:]
            if cursor in (b"0", 0, "0"):
                return

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
            raise ValueError("set: nx and xx exclude each other")
        if nx:
            args.append("NX")
        elif xx:
            args.append("XX")
        return self._run(*args) is not None

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        items = [(self._key(key), encode(value)) for key, value in mapping.items()]
        ttl = () if ttl_ms is None else ("PX", check_ttl(ttl_ms))
        if not items:
            return
        pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: all or nothing
        for full, text in items:
            pipe.execute_command("SET", full, text, *ttl)
        pipe.execute()

    def delete(self, *keys: str) -> int:
        names = [self._key(key) for key in keys]
        return int(self._run("UNLINK", *names)) if names else 0

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
        return default if data is None else _value(data)

    def clear(self) -> int:
        if self._closed:
            raise ClosedError(f"this KV store on {self._description} is closed")
        removed = 0
        batch: list[str] = []
        for key in self._scan(self._ns.translate(_GLOB) + "*"):
            batch.append(self._ns + key)
            if len(batch) >= _SCAN_COUNT:
                removed += int(self._run("UNLINK", *batch))
                batch = []
        if batch:
            removed += int(self._run("UNLINK", *batch))
        return removed

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
