"""One SQLite file: its connections, busy retries, and error mapping.

Rules:
* A few connections serve every thread (sqlite/pool.py): one writer, used under this
  process's write lock, and up to ``pool.READERS`` readers, each lent for one statement;
  after ``os.fork()`` the child opens its own and never touches the parent's.
* Every statement runs in autocommit mode or inside ``BEGIN IMMEDIATE``, so a
  write never has to upgrade a read lock (the upgrade is what deadlocks under WAL).
* ``busy_timeout_ms`` bounds the whole call: one deadline, taken when the call
  starts, covers the wait for this process's write lock (or a reader) and every retry
  of "database is locked" (SQLite's own busy handler is off, so it cannot add its
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
from jexkv.errors import BackendError, BackendTimeout, BackendUnavailable
from jexkv.sqlite import schema, version
from jexkv.sqlite.pool import Pool

__all__ = ["Database"]

T = TypeVar("T")


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
        # Writers of this process queue here rather than in SQLite's busy handler,
        # which sleeps and polls; only other processes still meet "locked".
        self._write_lock = threading.Lock()
        # A fork waits for this process's running write (at most busy_timeout_ms): a
        # write caught half-way would leave SQLite locks the child could never take.
        forks.hold(self, "_write_lock")
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
        self._pool = Pool(self.connect, self.path)
        try:
            self._writing(lambda conn: schema.migrate(conn, self.path), self._deadline())
        except BaseException:
            self.close()
            raise

    def connect(self) -> sqlite3.Connection:
        """A new connection to the file, configured; the pool's, or the caller's to close
        (and, in a forked child, never to use: see pool.forget)."""
        try:
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                # No busy handler: retry() waits, against the call's one deadline.
                timeout=0.0,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # lent to one thread at a time
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
        pool = self._pool
        deadline = self._deadline()
        conn = pool.lend(deadline)
        try:
            try:
                return conn.execute(sql, params).fetchall()  # the common case, no closure
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    self.check_file()
                    raise translate(exc, self.path) from exc
            return self.retry(lambda: conn.execute(sql, params).fetchall(), deadline)
        finally:
            pool.give_back(conn)

    def _writing(self, fn: Callable[[sqlite3.Connection], T], deadline: float) -> T:
        """``fn(writer)`` under this process's write lock, retried while busy."""
        lock = self._write_lock
        if not lock.acquire(False) and not lock.acquire(
            timeout=max(0.0, deadline - time.monotonic())
        ):
            raise BackendTimeout(
                f"{self.path}: other threads of this process held the write lock "
                f"past busy_timeout_ms ({self.busy_timeout_ms} ms)"
            )
        pool = self._pool
        try:
            conn = pool.writer()
            self.check_file()
            return self.retry(lambda: fn(conn), deadline)
        finally:
            if pool.closed:
                pool.close_writer()  # closed meanwhile: this write was its last use
            lock.release()

    def write(self, sql: str, params: Any = ()) -> int:
        """Run one write statement on its own (autocommit); rows changed."""
        return self._writing(lambda conn: conn.execute(sql, params).rowcount, self._deadline())

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT``, retried whole when busy."""

        def attempt(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        return self._writing(attempt, self._deadline())

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Pass every SQL statement this store runs to ``callback``; for tests."""
        self._pool.trace(callback)

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is None or pool.closed:
            return
        pool.close()
        # The writer: closed now, or by the write running now when it ends (they are bounded
        # by busy_timeout_ms).
        if self._write_lock.acquire(timeout=self.busy_timeout_ms / 1000.0):
            try:
                pool.close_writer()
            finally:
                self._write_lock.release()
