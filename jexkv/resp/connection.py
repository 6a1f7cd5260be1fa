"""One socket to a Redis server: connect, handshake, send, read replies.

Rules:
* Sockets, timeouts, TLS and the handshake live here and nowhere else; the
  bytes are understood by ``protocol.ReplyParser`` alone.
* Every wait is bounded: connecting by ``connect_timeout``, every reply by a
  deadline (``socket_timeout``, or the longer one a blocking command passes).
* Any error in the middle of a send or a reply closes the connection before it
  is raised: a socket that may still owe bytes of an old reply is never reused.
* Errors leave as jexkv errors, raised ``from`` their cause, mapped by one context manager
  for every step (``errors.socket_errors``): a timeout as BackendTimeout, any other OSError
  as BackendUnavailable, bad bytes as ProtocolError. The password never appears in a repr
  or an error's text.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import time
from typing import Any, Callable

from jexkv.errors import BackendUnavailable
from jexkv.resp.endpoint import Endpoint
from jexkv.resp.errors import socket_errors
from jexkv.resp.protocol import NEED_DATA, ReplyParser, pack_command

__all__ = ["Connection"]

_CHUNK = 65536
_monotonic = time.monotonic


def _readable(sock: socket.socket, timeout: float) -> bool:
    """True when ``sock`` has bytes to read within ``timeout`` seconds."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(timeout, 0.0) * 1000.0))
    readable, _, _ = select.select([sock], [], [], max(timeout, 0.0))
    return bool(readable)


class Connection(Endpoint):
    """A connection to one Redis server, speaking RESP3 (or RESP2 on old servers); its
    settings are ``Endpoint``'s, plus ``keepalive`` (TCP keepalive probes)."""

    def __init__(self, *, keepalive: bool = True, **settings: Any) -> None:
        super().__init__(**settings)
        self.keepalive = keepalive
        self.last_used = 0.0
        self.pid = os.getpid()
        self._push_handler: Callable[[list[Any]], None] | None = None
        self._sock: socket.socket | None = None
        self._sock_timeout: float | None = None  # what the socket's timeout is set to now
        self._parser = ReplyParser()
        self._ready: list[Any] = []  # replies that wait_readable() read ahead
        self._rbuf = bytearray(_CHUNK)
        self._rview = memoryview(self._rbuf)

    def __repr__(self) -> str:
        return self.describe(self._sock is not None)

    @property
    def is_connected(self) -> bool:
        return self._sock is not None

    def has_unread(self) -> bool:
        """Bytes (or the end of the stream) wait on an idle connection: the server closed
        it, e.g. with CLIENT KILL in a failover, or sent more than it was asked (read along
        with the last reply, or later). Not fit to lend."""
        if self._ready or self._parser.buffered:  # bytes beyond the last reply: out of step
            return True
        return self._sock is not None and _readable(self._sock, 0.0)

    @property
    def push_handler(self) -> Callable[[list[Any]], None] | None:
        """Where RESP3 push frames go (pub/sub messages); None keeps them in ``pushes``."""
        return self._push_handler

    @push_handler.setter
    def push_handler(self, handler: Callable[[list[Any]], None] | None) -> None:
        self._push_handler = handler
        self._parser.push_handler = handler

    @property
    def pushes(self) -> Any:
        """Push frames received while no push_handler was set (a deque)."""
        return self._parser.pushes

    # -- opening and closing ---------------------------------------------------------

    def connect(self) -> None:
        """Open the socket and run the handshake; a no-op when already connected."""
        if self._sock is not None:
            return
        self._sock = self._open()
        self._sock_timeout = self.socket_timeout
        self._parser = ReplyParser(push_handler=self._push_handler)
        self._ready = []
        self.pid = os.getpid()
        self.last_used = _monotonic()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _open(self) -> socket.socket:
        where = self.address
        opened: list[socket.socket] = []  # closed again if anything fails

        def close() -> None:
            for sock in opened:
                sock.close()

        with socket_errors(
            f"cannot connect to {where}: no answer within {self.connect_timeout:g} s"
            " (connect_timeout_ms)",
            f"cannot connect to {where}",
            close,
        ):
            if self.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                opened.append(sock)
                sock.settimeout(self.connect_timeout)
                sock.connect(self.path)
            else:
                sock = socket.create_connection((self.host, self.port), self.connect_timeout)
                opened.append(sock)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl_context is not None:
                hostname = self.server_hostname
                if hostname is None and self.path is None:
                    hostname = self.host
                sock = self.ssl_context.wrap_socket(sock, server_hostname=hostname)
                opened.append(sock)
            sock.settimeout(self.socket_timeout)
        return sock

    def _handshake(self) -> None:
        steps = self.handshake()
        try:
            command = next(steps)
            while True:
                command = steps.send(self.execute(*command))
        except StopIteration as done:
            self.protocol_version = done.value

    def close(self) -> None:
        """Close the socket (never a shutdown: a forked child may share it). Idempotent."""
        sock, self._sock = self._sock, None
        self._ready = []
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- I/O ---------------------------------------------------------------------------

    def _receiving(self, timeout: float | None = None) -> socket_errors:
        """The error mapping of a wait for a reply (``timeout``: a command's own)."""

        def timed_out() -> str:
            wait = self.socket_timeout if timeout is None else timeout
            option = "socket_timeout_ms" if timeout is None else "the command's timeout"
            return f"no reply from {self.address} within {wait:g} s ({option})"

        return socket_errors(timed_out, lambda: f"connection to {self.address} failed", self.close)

    def _closed_error(self) -> BackendUnavailable:
        return BackendUnavailable(f"the connection to {self.address} is closed")

    def send(self, data: bytes) -> None:
        """Write ``data`` whole (connecting first when closed)."""
        if self._sock is None:
            self.connect()
        sock = self._sock
        assert sock is not None
        with socket_errors(
            lambda: (
                f"could not send to {self.address} within {self.socket_timeout:g} s"
                " (socket_timeout_ms)"
            ),
            lambda: f"cannot send to {self.address}",
            self.close,
        ):
            if self._sock_timeout != self.socket_timeout:
                sock.settimeout(self.socket_timeout)
                self._sock_timeout = self.socket_timeout
            sock.sendall(data)
        self.last_used = _monotonic()

    def read_reply(self, timeout: float | None = None) -> Any:
        """The next reply (error replies as ErrorReply values), waiting up to ``timeout``.

        ``timeout`` defaults to ``socket_timeout``; a blocking command passes a longer one.
        """
        if self._ready:
            return self._ready.pop(0)
        if self._sock is None:
            raise self._closed_error()
        try:
            reply = self._parser.next_reply()  # often here already: a pipeline's replies
        except BaseException:
            self.close()  # bad bytes: the stream can no longer be trusted
            raise
        if reply is NEED_DATA:
            with self._receiving(timeout):
                reply = self._receive(self.socket_timeout if timeout is None else timeout)
        self.last_used = _monotonic()
        return reply

    def _receive(self, timeout: float) -> Any:
        """Read until the parser has a reply; raises socket.timeout past the deadline."""
        sock, parser, view = self._sock, self._parser, self._rview
        assert sock is not None
        wait = timeout
        deadline = _monotonic() + timeout
        while True:
            if wait <= 0:
                raise socket.timeout("timed out")
            if wait != self._sock_timeout:
                sock.settimeout(wait)
                self._sock_timeout = wait
            n = sock.recv_into(view)
            if not n:
                self.close()
                raise BackendUnavailable(f"connection closed by the server ({self.address})")
            parser.feed(view[:n])
            reply = parser.next_reply()
            if reply is not NEED_DATA:
                return reply
            wait = deadline - _monotonic()

    def wait_readable(self, timeout: float = 0.0) -> bool:
        """Wait up to ``timeout`` for a whole reply; True when ``read_reply`` has one ready.

        For pub/sub. Bytes that arrive are read and parsed here; RESP3 push frames among
        them go to ``push_handler`` at once, and when one is set this returns (False)
        after the first bytes, so the caller can look at what its handler received.
        Waiting is not an error, so running out of time does not close the connection.
        """
        if self._ready:
            return True
        sock, parser, view = self._sock, self._parser, self._rview
        if sock is None:
            raise self._closed_error()
        with self._receiving():
            reply = parser.next_reply()
            deadline = _monotonic() + timeout
            while reply is NEED_DATA:
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if not pending and not _readable(sock, deadline - _monotonic()):
                    return False
                # Readable: one recv (the rest of a TLS record may still be on its way).
                if self._sock_timeout != self.socket_timeout:
                    sock.settimeout(self.socket_timeout)
                    self._sock_timeout = self.socket_timeout
                n = sock.recv_into(view)
                if not n:
                    self.close()
                    raise BackendUnavailable(f"connection closed by the server ({self.address})")
                parser.feed(view[:n])
                self.last_used = _monotonic()
                reply = parser.next_reply()
                if reply is NEED_DATA and self._push_handler is not None:
                    return False
        self._ready.append(reply)
        return True

    def execute(self, *args: object, timeout: float | None = None) -> Any:
        """Send one command and read its reply (an ErrorReply is returned, not raised)."""
        self.send(pack_command(*args))
        return self.read_reply(timeout)
