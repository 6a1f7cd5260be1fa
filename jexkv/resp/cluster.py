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

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from jexkv.errors import BackendError, BackendUnavailable
from jexkv.resp.blocking import Blocker
from jexkv.resp.client import Redis
from jexkv.resp.commands import blocking_timeout, command_name
from jexkv.resp.errors import NoScriptError, ServerError, server_error
from jexkv.resp.evalsha import EvalSha
from jexkv.resp.pipelines import Commands, replies_of, transaction_slot
from jexkv.resp.protocol import ErrorReply, pack_command
from jexkv.resp.slots import (
    ClusterSettings,
    key_slot,
    parse_shards,
    parse_slots,
    redirected,
)

__all__ = ["RedisCluster", "key_slot"]


class ClusterScript(EvalSha):
    """A Lua script whose keys all live in one slot, run on that slot's primary."""

    def __init__(self, cluster: RedisCluster, lua: str) -> None:
        super().__init__(lua)
        self._cluster = cluster

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        slot = key_slot(keys[0]) if keys else None
        return self._cluster.execute_routed(slot, self.packed(keys, args), "EVALSHA", lua=self.lua)


class ClusterPipeline(Commands):
    """Commands sent together; split by node, answered in the order they were added."""

    def __init__(self, cluster: RedisCluster, transaction: bool) -> None:
        super().__init__(transaction)
        self._cluster = cluster

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = self._take()
        if not commands:
            return []
        cluster = self._cluster
        slots = [cluster.command_slot(command) for command in commands]
        if self._transaction:
            node = cluster.node_for_slot(transaction_slot(slots))
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
            if redirected(reply):
                try:
                    replies[i] = cluster.execute_command(*commands[i])
                except ServerError as exc:
                    replies[i] = ErrorReply(f"{exc.code} {exc.message}")
        return replies_of(replies, False, raise_on_error)


class RedisCluster(ClusterSettings):
    """A thread-safe client for a Redis Cluster; ``seeds`` are (host, port) pairs to start from."""

    def __init__(
        self,
        seeds: Sequence[tuple[str, int]],
        *,
        retry_window_s: float = 10.0,
        **node_options: Any,
    ) -> None:
        super().__init__(seeds, retry_window_s=retry_window_s, **node_options)
        self._nodes: dict[tuple[str, int], Redis] = {}
        self._lock = threading.Lock()

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
        for address in self._candidates(self._nodes):
            node = self._node(address)
            try:
                try:
                    ranges = parse_shards(node.execute_command("CLUSTER", "SHARDS"))
                except ServerError:  # before Redis 7
                    ranges = parse_slots(node.execute_command("CLUSTER", "SLOTS"))
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            self._map.load(ranges)
            return
        raise BackendUnavailable("no node of the Redis Cluster answered: " + "; ".join(errors))

    def node_for_slot(self, slot: int | None) -> Redis:
        if self._map.stale:
            self.refresh()
        address = self._map.lookup(slot)
        if address is None:
            self.refresh()  # a slot no node serves (yet): look again
            address = self._map.lookup(slot)
        return self._node(address or self._map.any())

    def node_for(self, key: str | bytes) -> Redis:
        """The client of the primary serving ``key`` (for a blocking connection of its own)."""
        return self.node_for_slot(key_slot(key))

    def any_node(self) -> Redis:
        return self.node_for_slot(None) if not self._map.stale else self._node(self._seeds[0])

    def primaries(self) -> list[Redis]:
        if self._map.stale:
            self.refresh()
        return [self._node(a) for a in self._map.primaries()]

    # -- routing -----------------------------------------------------------------------

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        name = command_name(args[0]) if args else ""
        if timeout is None:
            timeout = blocking_timeout(name, args, self.socket_timeout)
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
        redirects = self._redirects()
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
            except ServerError as exc:
                step = redirects.after(exc, node.host)
                if step is None:
                    raise
                pause, target = step
                if target is not None:
                    asking = self._node(target)
                if pause:
                    time.sleep(pause)
            except BackendUnavailable:
                self._map.stale = True  # the node may be gone: look at the map again next time
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
