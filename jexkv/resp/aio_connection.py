"""AsyncConnection: one connection to a Redis server for asyncio, shared by many tasks.

Rules:
* Auto-pipelining: ``request`` queues a packed command and returns at once a future of its
  reply; everything the tasks of one loop queue before the loop next runs its callbacks goes
  out in one write (as ioredis's ``enableAutoPipelining``), and replies are handed back in
  order as they arrive (``data_received``). A hundred concurrent commands cost a few round
  trips, not a hundred.
* The bytes are understood by ``protocol.ReplyParser`` alone, the handshake is
  ``handshake.handshake``'s, and socket errors are mapped by ``errors.socket_errors``: only
  the I/O differs from the sync ``Connection``.
* Every reply is awaited against a deadline: commands written together share one, and one
  timer per connection looks at the oldest write still unanswered (no timer, nor clock
  read, per command); past its deadline the connection is closed and every command on it
  fails with BackendTimeout. A lost connection fails every
  command on it with BackendUnavailable; ``sent`` on that error says whether its bytes had
  been written (a command never written may be sent again).
* A task that stops waiting (cancelled) leaves its reply to be read and dropped, so the
  replies of the others stay in step.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
from typing import Any

from jexkv.errors import BackendTimeout, BackendUnavailable, ProtocolError
from jexkv.resp.endpoint import Endpoint
from jexkv.resp.errors import socket_errors
from jexkv.resp.protocol import NEED_DATA, ReplyParser, pack_command

__all__ = ["AsyncConnection", "TIMEOUTS"]

# What a timed-out await raises: asyncio's own TimeoutError is another class before 3.11.
TIMEOUTS: tuple[type[BaseException], ...] = (asyncio.TimeoutError, TimeoutError, socket.timeout)


def _lost(text: str, sent: bool) -> BackendUnavailable:
    exc = BackendUnavailable(text)
    exc.sent = sent  # type: ignore[attr-defined]
    return exc


def _shut(transport: asyncio.Transport) -> None:
    """End a connection whose loop is closed, where ``abort()`` would need that loop: the
    server sees it end now, and the socket is freed with the transport."""
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # gone already


class AsyncConnection(Endpoint, asyncio.Protocol):
    """A connection to one Redis server, speaking RESP3 (or RESP2 on old servers), shared by
    the tasks of one loop; its settings are ``Endpoint``'s."""

    def __init__(self, **settings: Any) -> None:
        Endpoint.__init__(self, **settings)
        self.pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._parser = ReplyParser()
        # The futures of the replies of commands written or to be written, oldest first.
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._out: list[bytes] = []  # packed commands not written yet
        self._unsent = 0  # how many of _waiting (the last ones) _out holds
        self._out_timeout: float | None = None  # the longest timeout asked of those
        # Writes not answered whole, oldest first: [replies still due, deadline].
        self._writes: collections.deque[list[Any]] = collections.deque()
        self._flush_soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed_error: BackendUnavailable | None = None

    def __repr__(self) -> str:
        return self.describe(self.is_connected)

    @property
    def is_connected(self) -> bool:
        return self._transport is not None and self._closed_error is None

    @property
    def pending(self) -> int:
        """Commands sent or queued whose replies have not come."""
        return len(self._waiting)

    # -- opening and closing ---------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection and run the handshake."""
        loop = self._loop = asyncio.get_running_loop()
        where = self.address
        with socket_errors(
            lambda: (
                f"cannot connect to {where}: no answer within {self.connect_timeout:g} s"
                " (connect_timeout_ms)"
            ),
            lambda: f"cannot connect to {where}",
            self.close,
            TIMEOUTS,
        ):
            if self.path is not None:
                opening = loop.create_unix_connection(
                    lambda: self,
                    self.path,
                    ssl=self.ssl_context,
                    server_hostname=self.server_hostname if self.ssl_context else None,
                )
            else:
                opening = loop.create_connection(
                    lambda: self,
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=(self.server_hostname or self.host)
                    if self.ssl_context
                    else None,
                )
            await asyncio.wait_for(opening, self.connect_timeout)
        self.pid = os.getpid()
        steps = self.handshake()
        try:
            command = next(steps)
            while True:
                command = steps.send(await self.request(pack_command(*command)))
        except StopIteration as done:
            self.protocol_version = done.value
        except BaseException:
            self.close()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        why = f": {exc}" if exc else ""
        self._fail(f"connection to {self.address} lost{why}")

    def close(self) -> None:
        """Close the connection; every command still on it fails (idempotent)."""
        self._fail(f"the connection to {self.address} was closed")

    def _fail(self, text: str, error: BaseException | None = None) -> None:
        """End this connection: every command on it gets ``error`` (default: lost)."""
        if self._closed_error is None:
            self._closed_error = _lost(text, True)
        transport, self._transport = self._transport, None
        if transport is not None:
            if self._loop is not None and self._loop.is_closed():
                _shut(transport)  # its loop has ended (asyncio.run returned): no abort()
            else:
                transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        unsent = self._unsent
        self._out, self._unsent = [], 0
        self._writes.clear()
        waiting, self._waiting = self._waiting, collections.deque()
        for i, future in enumerate(waiting):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_exception(_lost(text, sent=i < len(waiting) - unsent))

    # -- requests ----------------------------------------------------------------------

    def request(self, packed: bytes, timeout: float | None = None) -> asyncio.Future[Any]:
        """Queue ``packed`` (one command) to be written with the others of this moment; a
        future of its reply (an ErrorReply is a value, not raised)."""
        loop = self._loop
        if self._closed_error is not None or loop is None:
            raise self._refused()
        future = loop.create_future()
        self._waiting.append(future)
        self._out.append(packed)
        self._unsent += 1
        if timeout is not None:
            self._longer(timeout)
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)
        return future

    def requests(
        self, packed: bytes, count: int, timeout: float | None = None
    ) -> list[asyncio.Future[Any]]:
        """Queue ``packed``, ``count`` commands at once (a pipeline: nothing comes between
        them); a future of each reply."""
        loop = self._loop
        if self._closed_error is not None or loop is None:
            raise self._refused()
        futures = [loop.create_future() for _ in range(count)]
        self._waiting.extend(futures)
        self._out.append(packed)
        self._unsent += count
        if timeout is not None:
            self._longer(timeout)
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)
        return futures

    def _longer(self, timeout: float) -> None:
        if self._out_timeout is None or timeout > self._out_timeout:
            self._out_timeout = timeout

    def _refused(self) -> BackendUnavailable:
        text = str(self._closed_error or f"the connection to {self.address} is closed")
        return _lost(text, False)

    def _flush(self) -> None:
        self._flush_soon = False
        out, count = self._out, self._unsent
        transport, loop = self._transport, self._loop
        if not out or transport is None or loop is None:
            return
        timeout = self._out_timeout
        self._out, self._unsent, self._out_timeout = [], 0, None
        wait = self.socket_timeout if timeout is None or timeout < self.socket_timeout else timeout
        deadline = loop.time() + wait
        self._writes.append([count, deadline])
        transport.write(b"".join(out) if len(out) > 1 else out[0])
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._writes or self._loop is None:
            return
        deadline = self._writes[0][1]
        if self._loop.time() >= deadline:
            error = BackendTimeout(
                f"no reply from {self.address} within {self.socket_timeout:g} s (socket_timeout_ms)"
            )
            self._fail(f"the connection to {self.address} timed out", error)
            return
        self._timer = self._loop.call_at(deadline, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        waiting, writes = self._waiting, self._writes
        try:
            while True:
                reply = parser.next_reply()
                if reply is NEED_DATA:
                    return
                if not writes:
                    raise ProtocolError(f"{self.address} sent a reply no command asked for")
                write = writes[0]
                write[0] -= 1
                if not write[0]:
                    writes.popleft()
                future = waiting.popleft()
                if not future.done():  # a cancelled waiter's reply is read and dropped
                    future.set_result(reply)
        except ProtocolError as exc:
            self._fail(f"{self.address} sent bytes that are not RESP", exc)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows
