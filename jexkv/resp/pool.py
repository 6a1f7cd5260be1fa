"""A bounded, thread-safe pool of Connections to one Redis server.

Rules:
* At most ``max_connections`` exist at once; ``acquire`` waits for a free one
  up to ``timeout``, then raises BackendTimeout. Idle connections are reused
  last-in first-out, so the busiest few stay warm and the rest can time out.
* A connection idle longer than ``health_check_interval`` is PINGed before it
  is handed out; one that fails is dropped and another is tried.
* A broken connection is never put back: ``release`` drops a closed one and
  ``discard`` closes it; either way its slot is freed.
* Fork-safe: a child process forgets (never closes, never uses) the parent's
  connections and starts with an empty pool.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from types import TracebackType
from typing import Callable

from jexkv.errors import BackendTimeout, ClosedError, ConfigError, JexkvError
from jexkv.resp.connection import Connection

__all__ = ["ConnectionPool"]

# Pools to reset in a forked child, before any other thread of the child can run.
_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
_reset_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _reset_lock
    _reset_lock = threading.Lock()  # the parent may have held it while forking
    for pool in list(_pools):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Lease:
    """``with pool.connection() as conn``: release on success, discard on an exception."""

    __slots__ = ("_pool", "_conn")

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: Connection | None = None

    def __enter__(self) -> Connection:
        self._conn = self._pool.acquire()
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if exc_type is None:
            self._pool.release(conn)
        else:  # it may owe the rest of a reply: never reuse it
            self._pool.discard(conn)


class ConnectionPool:
    """Connections made by ``factory``, lent out one thread at a time."""

    def __init__(
        self,
        factory: Callable[[], Connection],
        *,
        max_connections: int = 50,
        timeout: float = 5.0,
        health_check_interval: float = 5.0,
    ) -> None:
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, not {max_connections!r}")
        self.factory = factory
        self.max_connections = max_connections
        self.timeout = timeout
        self.health_check_interval = health_check_interval
        self._closed = False
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        """Start empty in this process (after a fork the parent's state is forgotten)."""
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[Connection] = []  # LIFO: the last released is lent first
        self._in_use: set[Connection] = set()
        self._created = 0  # idle + in use + being connected
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without register_at_fork having run
            with _reset_lock:
                if self._pid != os.getpid():
                    self._reset()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ConnectionPool {state}: {len(self._idle)} idle, "
            f"{self._created}/{self.max_connections} created>"
        )

    # -- lending -----------------------------------------------------------------------

    def acquire(self) -> Connection:
        """A connected Connection, for this thread alone until released or discarded."""
        self._check_pid()
        deadline: float | None = None
        while True:
            conn: Connection | None = None
            with self._cond:
                while True:
                    if self._closed:
                        raise ClosedError("the connection pool is closed")
                    if self._idle:
                        conn = self._idle.pop()
                        self._in_use.add(conn)
                        break
                    if self._created < self.max_connections:
                        self._created += 1
                        break
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.timeout
                    if now >= deadline:
                        raise BackendTimeout(
                            f"no connection free in the pool after {self.timeout:g} s "
                            f"({self.max_connections} in use)"
                        )
                    self._cond.wait(deadline - now)
            if conn is None:
                return self._new()
            if self._healthy(conn):
                return conn
            self.discard(conn)  # frees its slot; try the next idle one or a new one

    def _new(self) -> Connection:
        """Make and connect a connection in the slot just reserved."""
        try:
            conn = self.factory()
            conn.connect()
        except BaseException:
            with self._cond:
                self._created -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._in_use.add(conn)
        return conn

    def _healthy(self, conn: Connection) -> bool:
        # A connection the server closed while it was idle is found here, before a command
        # is sent on it (after sending, a lost reply could not tell whether it ran).
        if not conn.is_connected or conn.has_unread():
            return False
        if time.monotonic() - conn.last_used <= self.health_check_interval:
            return True
        try:
            return conn.execute("PING") in ("PONG", b"PONG")
        except JexkvError:
            return False

    def release(self, conn: Connection) -> None:
        """Give ``conn`` back; a closed one is dropped and its slot freed."""
        self._check_pid()
        with self._cond:
            if conn not in self._in_use:
                return  # released twice, or made by the parent before a fork: forget it
            self._in_use.discard(conn)
            if conn.is_connected and not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            self._created -= 1
            self._cond.notify()
        conn.close()

    def discard(self, conn: Connection) -> None:
        """Close ``conn`` and free its slot (after an error: it may owe bytes)."""
        self._check_pid()
        with self._cond:
            if conn not in self._in_use:
                if conn.pid != self._pid:
                    return  # the parent's socket: never closed in a child
            else:
                self._in_use.discard(conn)
                self._created -= 1
                self._cond.notify()
        conn.close()

    def connection(self) -> _Lease:
        """``with pool.connection() as conn:`` release on success, discard on an exception."""
        return _Lease(self)

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the idle connections now, the lent ones when they come back."""
        self._check_pid()
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._created -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def close_idle(self) -> None:
        """Close the idle connections (their server may be gone); the pool stays open."""
        self._check_pid()
        with self._cond:
            idle, self._idle = self._idle, []
            self._created -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    @property
    def closed(self) -> bool:
        return self._closed
