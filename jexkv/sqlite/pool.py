"""The connections of one SQLite file in this process: one writer and a few readers.

Rules:
* Connections are few and lent, not one per thread: a process with a thousand worker
  threads holds ``READERS + 1`` connections to a file, not a thousand (README, "Many
  queues"). Each connection is used by one thread at a time: the writer by the holder of
  the process's write lock (``Database`` takes it), a reader by the thread it is lent to
  for one statement.
* A forked child never uses or closes a connection of its parent's (closing one would drop
  the parent's locks on the file): the child forgets them, keeps them referenced so that
  garbage collection never closes them there, and opens its own.
* After ``close()`` nothing is lent; a connection still lent is closed when it comes back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Callable

from jexkv import forks
from jexkv.errors import BackendTimeout, ClosedError

__all__ = ["READERS", "Pool", "forget"]

READERS = 4  # reads run at once per process and file; more threads queue for a reader

# The parent's connections, in a forked child: referenced for ever, never used or closed.
_orphans: list[sqlite3.Connection] = []


def forget(conn: sqlite3.Connection) -> None:
    """Never use nor close ``conn`` again here (it belongs to the parent of this process)."""
    _orphans.append(conn)


class Pool:
    def __init__(self, connect: Callable[[], sqlite3.Connection], path: str) -> None:
        self._connect = connect
        self._path = path
        self.lock = threading.Lock()
        self._free = threading.Condition(self.lock)  # a reader came back
        self._idle: list[sqlite3.Connection] = []  # readers not lent
        self._readers = 0  # readers open, lent or idle
        self._waiting = 0  # threads waiting for a reader
        self._writer: sqlite3.Connection | None = None
        self._trace: Callable[[str], object] | None = None
        self.closed = False
        forks.reset(self)

    def _after_fork_in_child(self) -> None:
        for conn in self._idle:
            forget(conn)
        if self._writer is not None:
            forget(self._writer)
        self._idle, self._writer, self._readers, self._waiting = [], None, 0, 0
        self.lock = threading.Lock()
        self._free = threading.Condition(self.lock)

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
        return conn

    def writer(self) -> sqlite3.Connection:
        """The writer connection; only for the holder of the process's write lock."""
        conn = self._writer
        if conn is None:
            if self.closed:
                raise ClosedError(f"the SQLite store on {self._path} is closed")
            conn = self._writer = self._open()
        return conn

    def close_writer(self) -> None:
        """Close the writer (for the holder of the write lock, once the pool is closed)."""
        conn, self._writer = self._writer, None
        if conn is not None:
            conn.close()

    def lend(self, deadline: float) -> sqlite3.Connection:
        """A reader for one statement; give it back with :meth:`give_back`."""
        try:
            return self._idle.pop()  # one step under the GIL: no lock on the common path
        except IndexError:
            pass
        with self.lock:
            self._waiting += 1
            try:
                while True:
                    if self.closed:
                        raise ClosedError(f"the SQLite store on {self._path} is closed")
                    if self._idle:
                        return self._idle.pop()
                    if self._readers < READERS:
                        self._readers += 1
                        break
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._free.wait(left):
                        raise BackendTimeout(
                            f"{self._path}: every reader of this process stayed busy past "
                            "busy_timeout_ms"
                        )
            finally:
                self._waiting -= 1
        try:
            return self._open()
        except BaseException:
            with self.lock:
                self._readers -= 1
                self._free.notify()
            raise

    def give_back(self, conn: sqlite3.Connection) -> None:
        if self.closed:
            with self.lock:
                self._readers -= 1
            conn.close()
            return
        self._idle.append(conn)
        if self._waiting:  # a waiter counts itself before it looks at _idle: none is missed
            with self.lock:
                self._free.notify()

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Pass every statement of the connections not lent now, and of new ones, to
        ``callback`` (None: stop); for tests and debugging."""
        self._trace = callback
        for conn in [*self._idle, *([self._writer] if self._writer is not None else [])]:
            conn.set_trace_callback(callback)

    def close(self) -> None:
        """Close the idle readers; the writer is the caller's to close (see Database)."""
        with self.lock:
            self.closed = True
            idle, self._idle = self._idle, []
            self._readers -= len(idle)
            self._free.notify_all()
        for conn in idle:
            try:
                conn.close()
            except sqlite3.Error:
                pass
