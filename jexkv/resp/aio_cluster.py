"""AsyncRedisCluster: the asyncio client of a Redis Cluster (cluster.py's rules, with only the
I/O different; the slot map and the redirections are slots.py's, shared).

Rules:
* A command goes to the primary serving its key's slot, over that node's ``AsyncRedis``
  (auto-pipelined there). ``MOVED`` and ``ASK`` are followed (``ASKING`` and the command go
  out together on one connection), ``TRYAGAIN`` and ``CLUSTERDOWN`` are waited out with
  backoff for at most ``retry_window_s``; a command is sent again only after an answer that
  says it did not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from jexkv.errors import BackendError, BackendUnavailable
from jexkv.resp.aio_client import AsyncBlocker, AsyncRedis
from jexkv.resp.commands import blocking_timeout, command_name
from jexkv.resp.errors import NoScriptError, ServerError, server_error
from jexkv.resp.evalsha import EvalSha
from jexkv.resp.pipelines import Commands, replies_of, transaction_slot
from jexkv.resp.protocol import ErrorReply, pack_command
from jexkv.resp.slots import (
    ClusterSettings,
    command_slot,
    key_slot,
    parse_shards,
    parse_slots,
    redirected,
)

__all__ = ["AsyncRedisCluster"]


class AsyncRedisCluster(ClusterSettings):
    """An asyncio client for a Redis Cluster; ``seeds`` are (host, port) pairs to start from."""

    def __init__(
        self,
        seeds: Sequence[tuple[str, int]],
        *,
        retry_window_s: float = 10.0,
        **node_options: Any,
    ) -> None:
        super().__init__(seeds, retry_window_s=retry_window_s, **node_options)
        self._nodes: dict[tuple[str, int], AsyncRedis] = {}

    # -- the slot map ------------------------------------------------------------------

    def _node(self, address: tuple[str, int]) -> AsyncRedis:
        node = self._nodes.get(address)
        if node is None:
            if self._closed:
                raise BackendUnavailable("this Redis Cluster client is closed")
            node = self._nodes[address] = AsyncRedis(address[0], address[1], **self._options)
        return node

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers (known nodes, then seeds)."""
        errors = []
        for address in self._candidates(self._nodes):
            node = self._node(address)
            try:
                try:
                    ranges = parse_shards(await node.execute_command("CLUSTER", "SHARDS"))
                except ServerError:  # before Redis 7
                    ranges = parse_slots(await node.execute_command("CLUSTER", "SLOTS"))
            except BackendError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            self._map.load(ranges)
            return
        raise BackendUnavailable("no node of the Redis Cluster answered: " + "; ".join(errors))

    async def node_for_slot(self, slot: int | None) -> AsyncRedis:
        if self._map.stale:
            await self.refresh()
        address = self._map.lookup(slot)
        if address is None:
            await self.refresh()  # a slot no node serves (yet): look again
            address = self._map.lookup(slot)
        return self._node(address or self._map.any())

    async def node_for(self, key: str | bytes) -> AsyncRedis:
        """The client of the primary serving ``key``."""
        return await self.node_for_slot(key_slot(key))

    async def primaries(self) -> list[AsyncRedis]:
        if self._map.stale:
            await self.refresh()
        return [self._node(a) for a in self._map.primaries()]

    # -- routing -----------------------------------------------------------------------

    async def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        name = command_name(args[0]) if args else ""
        blocking = False
        if timeout is None:
            timeout = blocking_timeout(name, args, self.socket_timeout)
            blocking = timeout is not None
        slot = command_slot(args)
        return await self.execute_routed(
            slot, pack_command(*args), name, timeout, blocking=blocking
        )

    async def execute_routed(
        self,
        slot: int | None,
        packed: bytes,
        name: str,
        timeout: float | None = None,
        *,
        lua: str | None = None,
        blocking: bool = False,
    ) -> Any:
        """Send a packed command to the primary of ``slot``, following redirections; a
        ``blocking`` one on a connection of its own (it would hold the node's shared one)."""
        asking: AsyncRedis | None = None
        redirects = self._redirects()
        while True:
            node = asking if asking is not None else await self.node_for_slot(slot)
            try:
                if asking is not None:
                    asking = None
                    return await self._asking(node, packed, timeout)
                if blocking and timeout is not None:
                    return await node._blocking(packed, timeout)
                return await node.execute_packed(packed, name, timeout=timeout)
            except NoScriptError:
                if lua is None:
                    raise
                await node.execute_command("SCRIPT", "LOAD", lua)
            except ServerError as exc:
                step = redirects.after(exc, node.host)
                if step is None:
                    raise
                pause, target = step
                if target is not None:
                    asking = self._node(target)
                if pause:
                    await asyncio.sleep(pause)
            except BackendUnavailable:
                self._map.stale = True  # the node may be gone: read the map again next time
                raise

    async def _asking(self, node: AsyncRedis, packed: bytes, timeout: float | None) -> Any:
        """``ASKING`` and the command, written together: the target takes it once."""
        conn = await node._shared()
        futures = conn.requests(pack_command("ASKING") + packed, 2, timeout)
        _, result = await asyncio.gather(*futures)  # a failure of both is retrieved once each
        if isinstance(result, ErrorReply):
            raise server_error(result)
        return result

    # -- the rest of the AsyncRedis interface --------------------------------------------

    def register_script(self, lua: str) -> AsyncClusterScript:
        return AsyncClusterScript(self, lua)

    def blocker(self, client_name: str | None = None) -> AsyncBlocker:
        """Blocking pops on the node of their keys' slot, found again after a move."""
        return AsyncBlocker(self.node_for, self.note_redirect, client_name)

    def pipeline(self, transaction: bool = False) -> AsyncClusterPipeline:
        return AsyncClusterPipeline(self, transaction)

    async def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[bytes]:
        """SCAN MATCH over every primary (a key may come twice; callers drop repeats)."""
        for node in await self.primaries():
            async for name in node.scan_iter(match, count):
                yield name

    def close(self) -> None:
        self._closed = True
        for node in list(self._nodes.values()):
            node.close()

    async def aclose(self) -> None:
        self.close()
        await asyncio.sleep(0)

    async def __aenter__(self) -> AsyncRedisCluster:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncClusterScript(EvalSha):
    """A Lua script whose keys all live in one slot, run on that slot's primary."""

    def __init__(self, cluster: AsyncRedisCluster, lua: str) -> None:
        super().__init__(lua)
        self._cluster = cluster

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        slot = key_slot(keys[0]) if keys else None
        packed = self.packed(keys, args)
        return await self._cluster.execute_routed(slot, packed, "EVALSHA", lua=self.lua)


class AsyncClusterPipeline(Commands):
    """Commands sent together; split by node, answered in the order they were added."""

    def __init__(self, cluster: AsyncRedisCluster, transaction: bool) -> None:
        super().__init__(transaction)
        self._cluster = cluster

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = self._take()
        if not commands:
            return []
        cluster = self._cluster
        slots = [command_slot(command) for command in commands]
        if self._transaction:
            node = await cluster.node_for_slot(transaction_slot(slots))
            pipe = node.pipeline(transaction=True)
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error)
        by_node: dict[AsyncRedis, list[int]] = {}
        for i, slot in enumerate(slots):
            by_node.setdefault(await cluster.node_for_slot(slot), []).append(i)
        replies: list[Any] = [None] * len(commands)
        for node, indexes in by_node.items():
            pipe = node.pipeline()
            for i in indexes:
                pipe.execute_command(*commands[i])
            for i, reply in zip(indexes, await pipe.execute(raise_on_error=False)):
                replies[i] = reply
        for i, reply in enumerate(replies):  # a redirected command is sent again alone
            if redirected(reply):
                try:
                    replies[i] = await cluster.execute_command(*commands[i])
                except ServerError as exc:
                    replies[i] = ErrorReply(f"{exc.code} {exc.message}")
        return replies_of(replies, False, raise_on_error)
