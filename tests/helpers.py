"""Small helpers shared by the test modules."""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def kill_all(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """SIGKILL every process still running, and reap them all (a test's teardown)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def hold_sqlite_write_lock(path: pathlib.Path, seconds: float) -> threading.Thread:
    """Take the write lock of the SQLite file ``path`` as another program would, and give
    it back after ``seconds`` (from a thread; join it to be sure it is given back)."""
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        con.execute("ROLLBACK")
        con.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread
