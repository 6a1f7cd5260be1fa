"""The Redis KV store's operations, once, as generators of commands: no I/O here.

Rules:
* Values are stored as their JSON text under the namespaced key, so any other client reads
  them as it would any JSON cache entry. A store opened without a ``namespace`` keeps its
  keys under ``DEFAULT_NAMESPACE``, never at the root of the database: its ``keys()`` and
  ``clear()`` see only what jexkv's KV stores wrote (README, "Sharing one Redis"). Only an
  explicit ``namespace=""`` reaches the whole database.
* TTLs are Redis's own (PX, PEXPIRE, PTTL), so expiry is exact and counted by the server's
  clock. Every operation is one command, one Lua script (redis/lua/kv_*.lua), or one
  MULTI/EXEC: atomic on the server (per slot on a cluster).
* Each operation yields what to send (a command as a tuple of its arguments; ``(SCRIPT,
  name, keys, args)``; ``(TRANSACTION, commands)``) and gets back the reply, or the error
  thrown in. ``RedisKV`` (redis/kv.py) runs them over the sync client, ``AsyncRedisKV``
  (redis/aio_kv.py) over the asyncio one: the same steps, the same errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

from jexkv.codec import NX_AND_XX, check_amount, check_key, check_prefix, check_ttl, decode, encode
from jexkv.errors import ClosedError, InvalidArgument, SerializationError, WrongTypeError
from jexkv.namespaces import check_namespace, key_prefix
from jexkv.redis.programs import SCRIPT, TRANSACTION, Program
from jexkv.resp.errors import ServerError

__all__ = ["DEFAULT_NAMESPACE", "KVOps"]

DEFAULT_NAMESPACE = "jexkv"  # where a store opened without a namespace keeps its keys
SCAN_COUNT = 500
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_MISSING = object()


class KVOps:
    """The operations of one store: its namespace, and how its client groups keys."""

    def __init__(
        self, namespace: str, groups: Callable[[Iterable[str]], list[list[str]]], description: str
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.prefix = key_prefix(self.namespace)  # "<namespace>:", or "" for the whole database
        self.groups = groups
        self.description = description
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"this KV store on {self.description} is closed")

    def key(self, key: object) -> str:
        self.check_open()
        return self.prefix + check_key(key)

    def pattern(self, prefix: object = "") -> str:
        """The SCAN pattern of the live keys starting with ``prefix``."""
        self.check_open()
        return (self.prefix + check_prefix(prefix)).translate(_GLOB) + "*"

    def unprefixed(self, name: bytes) -> str:
        return name.decode("utf-8")[len(self.prefix) :]

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Any) -> Program[Any]:
        data = yield ("GET", self.key(key))
        return default if data is None else decode(data, key)

    def exists(self, key: str) -> Program[bool]:
        return bool((yield ("EXISTS", self.key(key))))

    def ttl_ms(self, key: str) -> Program[int]:
        return int((yield ("PTTL", self.key(key))))

    def get_many(self, keys: Iterable[str]) -> Program[dict[str, Any]]:
        names = {self.key(key): key for key in keys}
        found: dict[str, Any] = {}
        for group in self.groups(names):  # one MGET (one slot on a cluster)
            values = yield ("MGET", *group)
            for full, value in zip(group, values):
                if value is not None:
                    found[names[full]] = decode(value, names[full])
        return found

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl_ms: int | None, nx: bool, xx: bool) -> Program[bool]:
        args: list[Any] = ["SET", self.key(key), encode(value)]
        if ttl_ms is not None:
            args += ["PX", check_ttl(ttl_ms)]
        if nx and xx:
            raise InvalidArgument(NX_AND_XX)
        if nx:
            args.append("NX")
        elif xx:
            args.append("XX")
        return (yield tuple(args)) is not None

    def set_many(self, mapping: Mapping[str, Any], ttl_ms: int | None) -> Program[None]:
        items = {self.key(key): encode(value) for key, value in mapping.items()}
        ttl = 0 if ttl_ms is None else check_ttl(ttl_ms)
        # One script per slot: atomic on one server; on a cluster, atomic per slot.
        for group in self.groups(items):
            yield (SCRIPT, "kv_set_many", group, [ttl, *(items[full] for full in group)])

    def delete(self, keys: Iterable[str]) -> Program[int]:
        return (yield from self.unlink([self.key(key) for key in keys]))

    def unlink(self, names: list[str]) -> Program[int]:
        removed = 0
        for group in self.groups(names):
            removed += int((yield ("UNLINK", *group)))
        return removed

    def expire(self, key: str, ttl_ms: int) -> Program[bool]:
        full = self.key(key)
        return bool((yield ("PEXPIRE", full, check_ttl(ttl_ms))))

    def persist(self, key: str) -> Program[bool]:
        return bool((yield ("PERSIST", self.key(key))))

    def incr(self, key: str, amount: int, ttl_ms: int | None) -> Program[int]:
        full = self.key(key)
        check_amount(amount)
        ttl = 0 if ttl_ms is None else check_ttl(ttl_ms)
        try:
            return int((yield (SCRIPT, "kv_incr", [full], [amount, ttl])))
        except ServerError as exc:
            if "not an integer" in exc.message or exc.code == "WRONGTYPE":
                raise WrongTypeError(f"incr: the value of {key!r} is not an int") from exc
            raise

    def pop(self, key: str, default: Any) -> Program[Any]:
        full = self.key(key)
        try:
            data = yield ("GETDEL", full)
        except ServerError as exc:
            if "unknown command" not in exc.message:
                raise
            # A server older than 6.2: GET and DEL in one transaction.
            data = (yield (TRANSACTION, [("GET", full), ("DEL", full)]))[0]
        if data is None:
            return default
        try:
            return decode(data, key)
        except SerializationError:
            yield ("SET", full, data, "NX")  # another client's value is not ours to lose
            raise
