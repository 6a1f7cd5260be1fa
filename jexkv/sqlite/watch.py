"""CommitWatch: the one thread per SQLite queue store that notices other processes' work.

Rule: idle workers never poll the file. One thread per store reads ``PRAGMA data_version``
on a connection of its own every 20 ms (it moves whenever another connection commits) and
only when it moved asks, in one query per few hundred queues (job_rows.READINESS), which of
the queues this process works on have ready jobs or a new next delayed job; it wakes
those queues alone (jexkv/wakeups.py). A thousand idle queues cost one such thread, one
connection and one small read every 20 ms (README, "Many queues"). Each commit it sees
also wakes the queues that have ``wait_for`` callers waiting (``finishes``): they read
their job again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any

from jexkv.outages import OutageLog
from jexkv.sqlite.db import Database
from jexkv.sqlite.job_rows import READINESS
from jexkv.wakeups import Wakeups

__all__ = ["CommitWatch"]

log = logging.getLogger("jexkv")

_POLL_S = 0.02  # how often the watcher looks for commits of other processes
_ERROR_PAUSE_S = 0.5
_CHUNK = 400  # queues per readiness query: under SQLite's oldest limit of 999 parameters
_UNSEEN = object()


class CommitWatch:
    def __init__(self, db: Database, wakeups: Wakeups, finishes: Wakeups) -> None:
        self._db = db
        self._wakeups = wakeups
        self._finishes = finishes
        self._watched: dict[str, object] = {}  # queue -> its next delayed due time last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._outage = OutageLog(log, f"{db.path}")  # one warning per outage

    def watch(self, queue: str) -> None:
        """Wake ``queue`` (its full name) when another process commits work for it."""
        if queue in self._watched and self._pid == os.getpid():
            return
        with self._lock:
            self._watched.setdefault(queue, _UNSEEN)
            if self._pid != os.getpid() and not self._stop.is_set():
                # First use, or a forked child, where the parent's thread did not follow.
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="jexkv-sqlite-watch", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        version = None
        try:
            while not self._stop.wait(_POLL_S):
                try:
                    if conn is None:
                        conn = self._db.connect()
                    now = self._data_version(conn)
                    if now != version:
                        version = now
                        self._wake(conn)
                        for queue in self._finishes.queues():
                            if self._finishes.waiting(queue):
                                self._finishes.bump(queue)
                    self._outage.ok()
                except Exception as exc:
                    self._outage.failed(exc, "watching for other processes' jobs")
                    if conn is not None:
                        conn.close()
                    conn, version = None, None
                    self._stop.wait(_ERROR_PAUSE_S)
        finally:
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def _data_version(self, conn: sqlite3.Connection) -> int:
        return int(self._db.retry(lambda: conn.execute("PRAGMA data_version").fetchall()[0][0]))

    def _wake(self, conn: sqlite3.Connection) -> None:
        names = list(self._watched)
        for i in range(0, len(names), _CHUNK):
            for queue, ready, due in self._readiness(conn, names[i : i + _CHUNK]):
                if ready or due != self._watched.get(queue):
                    self._watched[queue] = due
                    self._wakeups.bump(queue)

    def _readiness(self, conn: sqlite3.Connection, queues: list[str]) -> list[Any]:
        sql = READINESS.format(marks=",".join(["(?)"] * len(queues)))
        return self._db.retry(lambda: conn.execute(sql, queues).fetchall())

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join()
