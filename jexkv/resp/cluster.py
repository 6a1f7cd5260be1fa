"""RedisCluster: jexkv's client for a Redis Cluster, over one Redis client per node.

Rules:
* A command goes to the primary that serves its key's slot (CRC16 of the key, or of its
  ``{hash tag}``), by a slot map read with ``CLUSTER SHARDS`` (``CLUSTER SLOTS`` on servers
  before 7). Keyless commands go to any primary.
* Redirections are followed here, never seen by callers: ``MOVED`` updates the map (and a
  second one in a row reloads it whole), ``ASK`` sends ``ASKING`` then the one command on the
  same connection, ``TRYAGAIN`` and ``CLUSTERDOWN`` are retried with backoff for at most
  ``retry_window_s``. A command is sent again only after an answer that says it did not run.
* The same methods as Redis (execute_command, register_script, pipeline, scan_iter,
  slot_groups, node_for), so the KV and queue adapters take either.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jexkv.errors import BackendError, BackendUnavailable, ConfigError
from jexkv.resp.blocking import Blocker
from jexkv.resp.client import Redis, Script
from jexkv.resp.errors import NoScriptError, ServerError, server_error
from jexkv.resp.protocol import ErrorReply, as_text, pack_command

__all__ = ["RedisCluster", "key_slot"]

SLOTS = 16384
_MAX_REDIRECTS = 16
_REDIRECT_CODES = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"})
# Commands with no key, and the ones whose key is not their first argument.
_KEYLESS = frozenset(
    "PING INFO CONFIG CLIENT SCRIPT FLUSHDB FLUSHALL DBSIZE TIME ECHO COMMAND CLUSTER ROLE"
    " SCAN RANDOMKEY".split()
)
_SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16_TABLE = _crc16_table()


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster hashes with."""
    crc, table = 0, _CRC16_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key``: of its ``{tag}`` when it has a non-empty one."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return _crc16(data) % SLOTS


def _get(entry: Any, name: str) -> Any:
    """A field of a RESP3 map (a dict) or of a RESP2 flat list of pairs."""
    if isinstance(entry, dict):
        for key, value in entry.items():
            if as_text(key) == name:
                return value
        return None
    pairs = list(entry)
    for i in range(0, len(pairs) - 1, 2):
        if as_text(pairs[i]) == name:
            return pairs[i + 1]
    return None


def parse_shards(reply: Any) -> list[tuple[int, int, str, int]]:
    """(first slot, last slot, host, port) of each primary's ranges, from CLUSTER SHARDS."""
    ranges = []
    for shard in reply:
        slots = [int(s) for s in _get(shard, "slots") or []]
        primary = None
        for node in _get(shard, "nodes") or []:
            if as_text(_get(node, "role")) == "master" and as_text(_get(node, "health")) != "fail":
                primary = node
        if primary is None:
            continue
        host = as_text(_get(primary, "ip") or _get(primary, "endpoint"))
        port = int(_get(primary, "port") or _get(primary, "tls-port"))
        ranges += [(slots[i], slots[i + 1], host, port) for i in range(0, len(slots), 2)]
    return ranges


def parse_slots(reply: Any) -> list[tuple[int, int, str, int]]:
    """The same from CLUSTER SLOTS (servers before 7.0)."""
    return [(int(r[0]), int(r[1]), as_text(r[2][0]), int(r[2][1])) for r in reply]


class ClusterScript(Script):
    """A Lua script whose keys all live in one slot, run on that slot's primary."""

    def __init__(self, cluster: RedisCluster, lua: str) -> None:
        super().__init__(cluster.any_node(), lua)
        self._cluster = cluster

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        slot = key_slot(keys[0]) if keys else None
        return self._cluster.execute_routed(slot, self.packed(keys, args), "EVALSHA", lua=self.lua)


class ClusterPipeline:
    """Commands sent together; split by node, answered in the order they were added."""

    def __init__(self, cluster: RedisCluster, transaction: bool) -> None:
        self._cluster = cluster
        self._transaction = transaction
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> ClusterPipeline:
        self._commands.append(args)
        return self

    def __len__(self) -> int:
        return len(self._commands)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self._commands = self._commands, []
        if not commands:
            return []
        cluster = self._cluster
        slots = [cluster.command_slot(command) for command in commands]
        if self._transaction:
            keyed = {slot for slot in slots if slot is not None}
            if len(keyed) > 1:
                raise ConfigError("a transaction on a Redis Cluster must keep its keys in one slot")
            node = cluster.node_for_slot(keyed.pop() if keyed else None)
            pipe = node.pipeline(transaction=True)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error)
        # Each node's share in one round trip; a redirected command is sent again alone.
        by_node: dict[Redis, list[int]] = {}
        for i, slot in enumerate(slots):
            by_node.setdefault(cluster.node_for_slot(slot), []).append(i)
        replies: list[Any] = [None] * len(commands)
        for node, indexes in by_node.items():
            pipe = node.pipeline()
            for i in indexes:
                pipe.execute_command(*commands[i])
            for i, reply in zip(indexes, pipe.execute(raise_on_error=False)):
                replies[i] = reply
        for i, reply in enumerate(replies):
            if isinstance(reply, ErrorReply) and reply.code in _REDIRECT_CODES:
                try:
                    replies[i] = cluster.execute_command(*commands[i])
                except ServerError as exc:
                    replies[i] = ErrorReply(f"{exc.code} {exc.message}")
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    raise server_error(reply)
        return replies


class RedisCluster:
    """A thread-safe client for a Redis Cluster; ``seeds`` are (host, port) pairs to start from."""

    def __init__(
        self,
        seeds: Sequence[tuple[str, int]],
        *,
        retry_window_s: float = 10.0,
        **node_options: Any,
    ) -> None:
        if not seeds:
            raise ConfigError("a Redis Cluster needs at least one seed node")
        if node_options.get("db", 0) != 0:
            raise ConfigError("a Redis Cluster has only database 0")
        self._seeds = list(seeds)
        self._options = node_options
        self.socket_timeout = float(node_options.get("socket_timeout", 5.0))
        self.retry_window_s = retry_window_s
        self._nodes: dict[tuple[str, int], Redis] = {}
        self._slots: list[tuple[str, int] | None] = [None] * SLOTS
        self._lock = threading.Lock()
        self._stale = True
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisCluster:
        """``redis+cluster://[[user]:password@]host:port[,host:port…][?options]``."""
        from jexkv.resp.url import parse_cluster_url

        seeds, kwargs = parse_cluster_url(url, options)
        return cls(seeds, **kwargs)

    def __repr__(self) -> str:
        return "<RedisCluster " + ",".join(f"{h}:{p}" for h, p in self._seeds) + ">"

    # -- the slot map ------------------------------------------------------------------

    def _node(self, address: tuple[str, int]) -> Redis:
        node = self._nodes.get(address)
        if node is None:
            with self._lock:
                node = self._nodes.get(address)
                if node is None:
                    if self._closed:
                        raise BackendUnavailable("this Redis Cluster client is closed")
                    node = Redis(address[0], address[1], **self._options)
                    self._nodes[address] = node
        return node

    def refresh(self) -> None:
        """Read the slot map from the first node that answers (known nodes, then seeds)."""
        errors = []
        candidates = list(dict.fromkeys([*self._nodes, *self._seeds]))
        random.shuffle(candidates)
        for address in candidates:
            node = self._node(address)
            try:
                try:
                    ranges = parse_shards(node.execute_command("CLUSTER", "SHARDS"))
                except ServerError:  # before Redis 7
                    ranges = parse_slots(node.execute_command("CLUSTER", "SLOTS"))
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            table: list[tuple[str, int] | None] = [None] * SLOTS
            for first, last, host, port in ranges:
                for slot in range(first, last + 1):
                    table[slot] = (host, port)
            self._slots = table
            self._stale = False
            return
        raise BackendUnavailable("no node of the Redis Cluster answered: " + "; ".join(errors))

    def node_for_slot(self, slot: int | None) -> Redis:
        if self._stale:
            self.refresh()
        address = self._slots[slot] if slot is not None else None
        if address is None:
            if slot is not None:
                self.refresh()  # a slot no node serves (yet): look again
                address = self._slots[slot]
            if address is None:
                address = next((a for a in self._slots if a is not None), self._seeds[0])
        return self._node(address)

    def node_for(self, key: str | bytes) -> Redis:
        """The client of the primary serving ``key`` (for a blocking connection of its own)."""
        return self.node_for_slot(key_slot(key))

    def any_node(self) -> Redis:
        return self.node_for_slot(None) if not self._stale else self._node(self._seeds[0])

    def primaries(self) -> list[Redis]:
        if self._stale:
            self.refresh()
        return [self._node(a) for a in dict.fromkeys(a for a in self._slots if a is not None)]

    def note_redirect(self, reply: ErrorReply | ServerError) -> None:
        """A MOVED seen elsewhere (a blocked command): the map is looked at again next time."""
        if reply.code == "MOVED":
            self._stale = True

    # -- routing -----------------------------------------------------------------------

    @staticmethod
    def command_slot(args: Sequence[Any]) -> int | None:
        """The slot a command's keys live in (its first key's), or None for a keyless one."""
        if not args:
            return None
        name = as_text(args[0]).upper()
        if name in _SCRIPT_COMMANDS:
            return key_slot(args[3]) if len(args) > 3 and int(args[2]) > 0 else None
        if name in _KEYLESS or len(args) < 2:
            return None
        return key_slot(args[1])

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        name = as_text(args[0]).upper() if args else ""
        if timeout is None and name in ("BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"):
            timeout = self.socket_timeout + (float(args[-1]) or 365 * 24 * 3600.0)
        return self.execute_routed(self.command_slot(args), pack_command(*args), name, timeout)

    def execute_routed(
        self,
        slot: int | None,
        packed: bytes,
        name: str,
        timeout: float | None = None,
        *,
        lua: str | None = None,
    ) -> Any:
        """Send a packed command to the primary of ``slot``, following redirections."""
        asking: Redis | None = None
        redirects = 0
        deadline = time.monotonic() + self.retry_window_s
        pause = 0.01
        while True:
            node = asking if asking is not None else self.node_for_slot(slot)
            try:
                if asking is not None:
                    asking = None
                    return self._asking(node, packed, timeout)
                return node.execute_packed(packed, name, timeout=timeout)
            except NoScriptError:
                if lua is None:
                    raise
                node.execute_command("SCRIPT", "LOAD", lua)
                continue
            except ServerError as exc:
                if exc.code not in _REDIRECT_CODES:
                    raise
                if exc.code in ("MOVED", "ASK"):
                    # An ASK comes back after each TRYAGAIN while a slot migrates: those are
                    # bounded by the retry window; MOVED ones by their count.
                    redirects += exc.code == "MOVED"
                    if redirects > _MAX_REDIRECTS or time.monotonic() > deadline:
                        raise
                    moved_slot, where = exc.message.split()
                    host, _, port = where.rpartition(":")
                    target = (host or node.host, int(port))
                    if exc.code == "ASK":
                        asking = self._node(target)
                    elif redirects > 1:
                        self._stale = True  # moved again: reload the whole map
                    else:
                        self._slots[int(moved_slot)] = target
                    continue
                if time.monotonic() + pause > deadline:  # TRYAGAIN, CLUSTERDOWN
                    raise
                time.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, 0.2)
                if exc.code == "CLUSTERDOWN":
                    self._stale = True
            except BackendUnavailable:
                self._stale = True  # the node may be gone: look at the map again next time
                raise

    def _asking(self, node: Redis, packed: bytes, timeout: float | None) -> Any:
        """``ASKING`` and the command on one connection: the target takes it once."""
        with node.pool.connection() as conn:
            conn.send(pack_command("ASKING") + packed)
            conn.read_reply(timeout)
            reply = conn.read_reply(timeout)
        if isinstance(reply, ErrorReply):
            raise server_error(reply)
        return reply

    # -- the rest of the Redis interface ------------------------------------------------

    def register_script(self, lua: str) -> ClusterScript:
        return ClusterScript(self, lua)

    def blocker(self, client_name: str | None = None) -> Blocker:
        """Blocking pops on the node of their keys' slot, found again after a move."""
        return Blocker(self.node_for, self.note_redirect, client_name)

    def pipeline(self, transaction: bool = False) -> ClusterPipeline:
        return ClusterPipeline(self, transaction)

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` grouped by slot (first-seen order): one multi-key command per group."""
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot(key), []).append(key)
        return list(groups.values())

    def scan_iter(self, match: str, count: int = 500) -> Iterator[bytes]:
        """SCAN MATCH over every primary (a key may come twice; callers drop repeats)."""
        for node in self.primaries():
            yield from node.scan_iter(match, count)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            nodes = list(self._nodes.values())
        for node in nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
