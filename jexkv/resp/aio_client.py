"""AsyncRedis: jexkv's asyncio client, the sibling of ``client.Redis``: only the I/O differs.

Rules:
* Commands share one connection per loop, auto-pipelined (aio_connection.py): concurrent
  ``await client.execute_command(…)`` calls of many tasks go out together and are answered
  in order. No thread is used, and no call blocks the loop.
* What needs a connection of its own gets one: a blocking command (``BZPOPMIN``…), a
  transaction with ``WATCH``, a ``Blocker``. ``max_connections`` bounds those.
* The sync client's rules hold (client.py): error replies raise ServerError; a command is
  sent again after a connection error only when it was never written or is safe to repeat
  (commands.SAFE), and only inside connect_timeout + the reply's timeout of the call's
  start; a timeout is never repeated; ``LOADING`` is waited for up to socket_timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from jexkv.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from jexkv.resp.aio_connection import AsyncConnection
from jexkv.resp.blocking import BlockerState
from jexkv.resp.commands import blocking_timeout, command_name
from jexkv.resp.endpoint import ClientSettings
from jexkv.resp.errors import NoScriptError, ServerError, server_error
from jexkv.resp.evalsha import EvalSha
from jexkv.resp.pipelines import Commands, framed, replies_of
from jexkv.resp.protocol import ErrorReply, pack_command, pack_commands
from jexkv.resp.retry import Loading, Resend, may_resend

__all__ = ["AsyncBlocker", "AsyncPipeline", "AsyncRedis", "AsyncScript"]


class AsyncRedis(ClientSettings):
    """An asyncio Redis client: any task of the loop may call any method at any time."""

    def _start(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._slots: asyncio.Semaphore | None = None  # made on the loop that uses it
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._conn: AsyncConnection | None = None
        self._opening: asyncio.Future[AsyncConnection] | None = None
        # Each connection dedicated() gave, and the semaphore it holds a place of.
        self._dedicated: dict[AsyncConnection, asyncio.Semaphore | None] = {}
        self._closed = False

    # -- connections -------------------------------------------------------------------

    def new_connection(self, **overrides: Any) -> AsyncConnection:
        """A connection with this client's settings (and ``overrides``), not yet connected."""
        return AsyncConnection(**{**self._settings, **overrides})

    async def _open(self, **overrides: Any) -> AsyncConnection:
        if self._closed:
            raise BackendUnavailable(f"{self!r} is closed")
        conn = self.new_connection(**overrides)
        await conn.connect()
        return conn

    async def _shared(self) -> AsyncConnection:
        """The connection every ordinary command of this loop goes over (opened once)."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn is not None and conn.is_connected and conn._loop is loop:
            return conn
        if conn is not None and conn._loop is not loop:
            conn.close()  # an earlier loop's (asyncio.run twice): this loop opens its own
        opening = self._opening
        if opening is None or opening.get_loop() is not loop:
            # A task of its own: a caller cancelled meanwhile stops only its own wait, and
            # the others still get the connection.
            opening = self._opening = loop.create_task(self._open())
            opening.add_done_callback(self._opened)
        return await asyncio.shield(opening)

    def _opened(self, opening: asyncio.Future[AsyncConnection]) -> None:
        """The shared connection's opening ended (before any caller waiting for it resumes)."""
        if self._opening is opening:
            self._opening = None
        if opening.cancelled() or opening.exception() is not None:  # retrieved: none may wait
            return
        conn = opening.result()
        if self._closed:  # closed while it opened
            conn.close()
        else:
            self._conn = conn

    async def dedicated(self, **overrides: Any) -> AsyncConnection:
        """A connection of the caller's own (for blocking commands, WATCH, pub/sub), counted
        against ``max_connections``; give it back with :meth:`give_back`."""
        slots = self._slots_here()
        if slots is not None:
            await slots.acquire()
        try:
            conn = await self._open(**overrides)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        self._dedicated[conn] = slots
        return conn

    def _slots_here(self) -> asyncio.Semaphore | None:
        """The bound of ``max_connections`` for this loop (an asyncio semaphore serves the
        one loop it first waited on; a client used from another loop makes a new one)."""
        if not self._max_connections:
            return None
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self._max_connections), loop
        return self._slots

    def give_back(self, conn: AsyncConnection) -> None:
        """Close a connection :meth:`dedicated` gave (it is never lent to another)."""
        conn.close()
        if conn in self._dedicated:
            slots = self._dedicated.pop(conn)
            if slots is not None:
                slots.release()

    # -- commands ----------------------------------------------------------------------

    async def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command; its reply, or the ServerError it answered with."""
        name = command_name(args[0]) if args else ""
        if timeout is None:
            timeout = blocking_timeout(name, args, self.socket_timeout)
            if timeout is not None:  # it would hold the shared connection: one of its own
                return await self._blocking(pack_command(*args), timeout)
        packed = pack_command(*args)
        conn = self._conn
        # The common case, in one frame: the shared connection is open, on this loop.
        if conn is not None and conn.is_connected and conn._loop is asyncio.get_running_loop():
            try:
                reply = await conn.request(packed, timeout)
            except BackendUnavailable as exc:
                if not may_resend(getattr(exc, "sent", True), name) or not self.retries:
                    raise
                reply = await self._retrying(packed, name, timeout)
            if type(reply) is not ErrorReply:
                return reply
            if reply.code != "LOADING":
                raise server_error(reply)
        return await self.execute_packed(packed, name, timeout=timeout)

    async def _blocking(self, packed: bytes, timeout: float) -> Any:
        conn = await self.dedicated()
        try:
            reply = await conn.request(packed, timeout)
        finally:
            self.give_back(conn)
        if isinstance(reply, ErrorReply):
            raise server_error(reply)
        return reply

    async def execute_packed(
        self, packed: bytes, name: str, *, timeout: float | None = None
    ) -> Any:
        """Send one command packed already; ``name`` (in capitals) decides its retries."""
        loading = None
        while True:
            reply = await self._send_packed(packed, name, timeout)
            if not isinstance(reply, ErrorReply):
                return reply
            loading = loading or Loading(self.socket_timeout)
            pause = loading.pause(reply)
            if pause is None:
                raise server_error(reply)
            await asyncio.sleep(pause)

    async def _send_packed(self, packed: bytes, name: str, timeout: float | None) -> Any:
        conn = self._conn
        if conn is not None and conn.is_connected and conn._loop is asyncio.get_running_loop():
            try:
                return await conn.request(packed, timeout)  # the common case: no retry frame
            except BackendUnavailable as exc:
                if not may_resend(getattr(exc, "sent", True), name) or not self.retries:
                    raise
        return await self._retrying(packed, name, timeout)

    async def _retrying(self, packed: bytes, name: str, timeout: float | None) -> Any:
        wait = self.socket_timeout if timeout is None else timeout
        resend = Resend(name, self.retries, self.connect_timeout + wait)
        while True:
            sent = False
            try:
                conn = await self._shared()
                sent = True
                return await conn.request(packed, timeout)
            except BackendTimeout:
                raise  # the server does not answer: waiting again would double the wait
            except BackendUnavailable as exc:
                pause = resend.pause(sent and getattr(exc, "sent", True))
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    def pipeline(self, transaction: bool = False) -> AsyncPipeline:
        return AsyncPipeline(self, transaction)

    def register_script(self, lua: str) -> AsyncScript:
        return AsyncScript(self, lua)

    def blocker(self, client_name: str | None = None) -> AsyncBlocker:
        """A connection of its own for blocking pops, ended early with ``interrupt()``."""

        async def here(key: str | bytes) -> AsyncRedis:
            return self

        return AsyncBlocker(here, lambda reply: None, client_name)

    # The methods that differ on a cluster, as on the sync client.

    def node_for(self, key: str | bytes) -> AsyncRedis:
        return self

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        group = list(keys)
        return [group] if group else []

    async def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[bytes]:
        """SCAN MATCH, page by page as the caller iterates (a key may come twice)."""
        cursor: Any = b"0"
        while True:
            cursor, names = await self.execute_command(
                "SCAN", cursor, "MATCH", match, "COUNT", count
            )
            for name in names:
                yield name
            if cursor in (b"0", 0, "0"):
                return

    def close(self) -> None:
        """Close every connection now (commands still waiting fail); idempotent."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        for dedicated in list(self._dedicated):
            self.give_back(dedicated)

    async def aclose(self) -> None:
        self.close()
        await asyncio.sleep(0)  # the transports' connection_lost runs

    async def __aenter__(self) -> AsyncRedis:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncPipeline(Commands):
    """Commands queued, then sent together; with ``transaction``, inside MULTI/EXEC."""

    def __init__(self, client: AsyncRedis, transaction: bool) -> None:
        super().__init__(transaction)
        self._client = client
        self._watching: AsyncConnection | None = None

    async def watch(self, *keys: Any) -> None:
        """WATCH keys now, on the connection of its own that will run the transaction."""
        if not self._transaction:
            raise ConfigError("watch() needs pipeline(transaction=True)")
        if self._watching is None:
            self._watching = await self._client.dedicated()
        reply = await self._watching.request(pack_command("WATCH", *keys))
        if isinstance(reply, ErrorReply):
            await self.reset()
            raise server_error(reply)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send every queued command at once; their replies, in order."""
        commands = self._take()
        watching, self._watching = self._watching, None
        if not commands:
            if watching is not None:
                self._client.give_back(watching)
            return []
        commands = framed(commands, self._transaction)
        try:
            conn = watching or await self._client._shared()
            futures = conn.requests(pack_commands(commands), len(commands))
            replies = list(await asyncio.gather(*futures))  # every error retrieved
        finally:
            if watching is not None:
                self._client.give_back(watching)
        return replies_of(replies, self._transaction, raise_on_error)

    async def reset(self) -> None:
        """Drop queued commands and any WATCH."""
        self._take()
        watching, self._watching = self._watching, None
        if watching is not None:
            self._client.give_back(watching)

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.reset()


class AsyncScript(EvalSha):
    """A Lua script run with EVALSHA; loaded on the first NOSCRIPT answer (evalsha.py)."""

    def __init__(self, client: Any, lua: str) -> None:
        super().__init__(lua)
        self._client = client

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        packed = self.packed(keys, args)
        try:
            return await self._client.execute_packed(packed, "EVALSHA")
        except NoScriptError:
            await self._client.execute_command("SCRIPT", "LOAD", self.lua)
            return await self._client.execute_packed(packed, "EVALSHA")


class AsyncBlocker(BlockerState):
    """Blocking pops on a connection of their own, ended early from any task (the sync
    ``Blocker``'s rules, blocking.py)."""

    _node: AsyncRedis | None
    _conn: AsyncConnection | None

    async def _connect(self, key: str) -> AsyncConnection:
        node: AsyncRedis = await self._node_for(key)
        self._node = node
        conn = await node._open(client_name=self.client_name)
        reply = await conn.request(pack_command("CLIENT", "ID")) if self.can_interrupt else None
        self._identified(conn, reply)
        return conn

    async def bzpopmin(self, keys: Sequence[str], timeout_s: float) -> tuple[str, Any, Any] | None:
        """As ``Blocker.bzpopmin``: (key, member, score), or None."""
        conn = self._conn
        if conn is None or not conn.is_connected:
            conn = await self._connect(keys[0])
        packed, wait = self._bzpopmin(keys, timeout_s)
        try:
            reply = await conn.request(packed, wait)
        except BaseException:
            self.close()  # cancelled or failed: the connection still owes that reply
            raise
        return self._popped(reply, keys)

    async def interrupt(self) -> bool:
        """End the running wait now; False when none was running (or CLIENT is refused)."""
        conn_id, node = self._conn_id, self._node
        if conn_id is None or node is None:
            return False
        try:
            return bool(await node.execute_command("CLIENT", "UNBLOCK", conn_id))
        except (BackendError, ServerError):
            return False
