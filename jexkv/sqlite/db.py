"""One SQLite file: a connection per thread, busy retries, and error mapping.

Rules:
* Each thread gets its own connection (sqlite3 connections are not for sharing);
  after ``os.fork()`` the child opens new ones and never touches the parent's.
* Every statement runs in autocommit mode or inside ``BEGIN IMMEDIATE``, so a
  write never has to upgrade a read lock (the upgrade is what deadlocks under WAL).
* ``busy_timeout_ms`` bounds the whole call: one deadline, taken when the call
  starts, covers the wait for this process's write lock and every retry of
  "database is locked" (SQLite's own busy handler is off, so it cannot add its
  wait to ours); past it BackendTimeout names the bound. Every other sqlite3
  error is translated here, once, and raised ``from`` its cause.
* The store writes only into the file it opened: connections never create a file
  (``mode=rw``), and the file's device and inode, read at open, are checked again
  when a connection opens, before every write and on errors; a file deleted or
  replaced while open raises BackendUnavailable naming it, and nothing is written.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import quote

from jexkv import forks
from jexkv.errors import BackendError, BackendTimeout, BackendUnavailable, ClosedError
from jexkv.sqlite import schema, version

__all__ = ["Database"]

T = TypeVar("T")

# Bumped in a forked child: every connection made before it belongs to the parent.
_fork_generation = [0]
# Parent connections seen in a child: kept referenced so that garbage collection never
# closes them there (closing would drop the parent's POSIX locks on the file).
_orphans: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    _fork_generation[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def translate(exc: sqlite3.Error, path: str) -> BackendError:
    """The jexkv error for a sqlite3 error on ``path`` (the caller raises it ``from`` exc)."""
    text = str(exc)
    if _is_busy(exc):
        return BackendTimeout(f"{path} stayed locked by another writer: {text}")
    if "file is not a database" in text:
        return BackendUnavailable(f"{path} is not a SQLite database ({text}); refusing it")
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("unable to open", "readonly", "disk I/O", "full", "permission")
    ):
        return BackendUnavailable(f"cannot write {path}: {text}")
    return BackendError(f"SQLite error on {path}: {text}")


class Database:
    """The shared file behind SQLite stores and queues."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = os.path.abspath(path)
        version.require(self.path)  # an old library is refused before anything is created
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy handler,
        # which sleeps and polls; only other processes still meet "locked".
        self._write_lock = threading.Lock()
        self._closed = False
        self._generation = _fork_generation[0]
        # A fork waits for this process's running write (at most busy_timeout_ms): a
        # write caught half-way would leave SQLite locks the child could never take.
        forks.hold(self, "_write_lock", "_lock")
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            # Created here, not by sqlite3, so that it is private (mode 0600) from the start.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise BackendUnavailable(f"cannot create {self.path}: {exc}") from exc
        self._uri = f"file:{quote(self.path)}?mode=rw"  # never creates the file
        self._identity = self._stat()
        conn = self.conn()
        try:
            self.retry(lambda: schema.migrate(conn, self.path))
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                # No busy handler: retry() waits, against the call's one deadline.
                timeout=0.0,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # one thread uses it; close() may come from another
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            self.check_file()  # a file gone says so, rather than "unable to open"
            raise translate(exc, self.path) from exc
        try:
            self.check_file()
        except BaseException:
            conn.close()
            raise

        def configure() -> None:
            # Durable with WAL and no fsync per commit; a power cut may lose the last
            # commits, never the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint every ~16 MB of WAL rather than every ~4 MB: fewer fsyncs
            # under a stream of small commits (+10-15% set/s measured here).
            conn.execute("PRAGMA wal_autocheckpoint = 4000")
            # Reads through a memory map instead of read() calls.
            conn.execute("PRAGMA mmap_size = 67108864")

        try:
            # Busy too while another process recovers the file after a crash: waited for.
            self.retry(configure)
        except BaseException:
            conn.close()
            raise
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork)."""
        pair = getattr(self._local, "pair", None)
        generation = _fork_generation[0]
        if pair is not None and pair[0] == generation:
            if not self._closed:
                return pair[1]  # type: ignore[no-any-return]
            # Closed while this thread kept its connection: only this thread may close it.
            self._local.pair = None
            pair[1].close()
        with self._lock:
            if self._closed:
                raise ClosedError(f"the SQLite store on {self.path} is closed")
            if self._generation != generation:
                # A forked child: the connections listed belong to the parent.
                _orphans.extend(conn for _, conn in self._conns)
                self._conns = []
                self._generation = generation
            conn = self._connect()
            self._conns.append((threading.current_thread(), conn))
        self._local.pair = (generation, conn)
        return conn

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {self.path}: {exc}") from exc
        return st.st_dev, st.st_ino

    def check_file(self) -> None:
        """Raise BackendUnavailable unless ``path`` is still the file this store opened."""
        now = self._stat()
        if now != self._identity:
            what = "deleted" if now is None else "replaced by another file"
            raise BackendUnavailable(
                f"{self.path} was {what} while this store had it open; refusing to go on "
                "(open the store again to use the file now there)"
            )

    def _deadline(self) -> float:
        return time.monotonic() + self.busy_timeout_ms / 1000.0

    def _busy_error(self, exc: sqlite3.Error) -> BackendTimeout:
        return BackendTimeout(
            f"{self.path} stayed locked by another writer for busy_timeout_ms "
            f"({self.busy_timeout_ms} ms): {exc}"
        )

    def retry(self, fn: Callable[[], T], deadline: float | None = None) -> T:
        """Run ``fn`` (one autocommit statement or a whole transaction) until it is not
        busy, up to ``deadline`` (monotonic; by default busy_timeout_ms from now)."""
        if deadline is None:
            deadline = self._deadline()
        pause = 0.001
        while True:
            try:
                return fn()
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    self.check_file()
                    raise translate(exc, self.path) from exc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._busy_error(exc) from exc
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.025)

    def read(self, sql: str, params: Any = ()) -> list[Any]:
        """All rows of one read statement."""
        conn = self.conn()
        return self.retry(lambda: conn.execute(sql, params).fetchall())

    def _lock_writes(self, deadline: float) -> None:
        lock = self._write_lock
        if not lock.acquire(False) and not lock.acquire(
            timeout=max(0.0, deadline - time.monotonic())
        ):
            raise BackendTimeout(
                f"{self.path}: other threads of this process held the write lock "
                f"past busy_timeout_ms ({self.busy_timeout_ms} ms)"
            )

    def write(self, sql: str, params: Any = ()) -> int:
        """Run one write statement on its own (autocommit); rows changed."""
        conn = self.conn()
        deadline = self._deadline()
        self._lock_writes(deadline)
        try:
            self.check_file()
            return self.retry(lambda: conn.execute(sql, params).rowcount, deadline)
        finally:
            self._write_lock.release()

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT``, retried whole when busy."""
        conn = self.conn()

        def attempt() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        deadline = self._deadline()
        self._lock_writes(deadline)
        try:
            self.check_file()
            return self.retry(attempt, deadline)
        finally:
            self._write_lock.release()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns, self._conns = self._conns, []
        if self._generation != _fork_generation[0]:
            _orphans.extend(conn for _, conn in conns)  # the parent's: not ours to close
            return
        me = threading.current_thread()
        for thread, conn in conns:
            # Closing a connection that another thread is using can crash the process:
            # a live thread closes its own on its next call (or frees it when it ends).
            if thread is me or not thread.is_alive():
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
