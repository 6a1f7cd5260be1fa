"""busy_timeout_ms bounds the whole call: every retry and SQLite's busy handler share one
deadline, so a write against a lock held longer raises BackendTimeout after about
busy_timeout_ms (not two or three times that), saying the real bound."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time
from typing import Any, Callable

import pytest

import jexkv
from tests.helpers import hold_sqlite_write_lock

BOUND_MS = 1000
HOLD_S = 1.8 * BOUND_MS / 1000  # longer than the bound; shorter than the old 2x or 3x wait
LONG = 3_600_000


def _timed_out(call: Callable[[], Any], path: pathlib.Path) -> tuple[float, str]:
    with hold_sqlite_write_lock(path, HOLD_S):
        started = time.monotonic()
        with pytest.raises(jexkv.BackendTimeout) as excinfo:
            call()
        return time.monotonic() - started, str(excinfo.value)


@pytest.mark.parametrize(
    "op",
    [
        "set",  # one autocommit statement
        "pop",  # a BEGIN IMMEDIATE transaction
        "set_many",
    ],
)
def test_kv_write_waits_at_most_busy_timeout_ms(tmp_path: pathlib.Path, op: str) -> None:
    path = tmp_path / "b.db"
    url = f"sqlite:///{path}"
    with jexkv.open_kv(url, busy_timeout_ms=BOUND_MS, vacuum_interval_ms=LONG) as kv:
        kv.set("k", 1)
        calls: dict[str, Callable[[], Any]] = {
            "set": lambda: kv.set("k", 2),
            "pop": lambda: kv.pop("k"),
            "set_many": lambda: kv.set_many({"a": 1, "b": 2}),
        }
        elapsed, message = _timed_out(calls[op], path)
        assert elapsed >= 0.9 * BOUND_MS / 1000, f"gave up after {elapsed:.2f} s"
        assert elapsed < 1.6 * BOUND_MS / 1000, f"waited {elapsed:.2f} s"
        assert f"{BOUND_MS} ms" in message and "busy_timeout_ms" in message, message
        assert kv.get("k") == 1  # nothing written
        assert kv.set("after", 1) is True


def test_queue_write_waits_at_most_busy_timeout_ms(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    with jexkv.open_queue(url, busy_timeout_ms=BOUND_MS) as q:
        q.enqueue("mail", "send", {"n": 0})
        elapsed, message = _timed_out(lambda: q.enqueue("mail", "send", {"n": 1}), path)
        assert 0.9 * BOUND_MS / 1000 <= elapsed < 1.6 * BOUND_MS / 1000, elapsed
        assert f"{BOUND_MS} ms" in message, message
        assert q.counts("mail")["waiting"] == 1


def test_the_in_process_write_lock_shares_the_deadline(tmp_path: pathlib.Path) -> None:
    """Time spent queueing behind this process's other writers counts against the bound."""
    path = tmp_path / "t.db"
    url = f"sqlite:///{path}"
    with jexkv.open_kv(url, busy_timeout_ms=BOUND_MS, vacuum_interval_ms=LONG) as kv:
        kv.set("k", 1)
        db: Any = kv._db  # type: ignore[attr-defined]
        inside = threading.Event()

        def slow(conn: sqlite3.Connection) -> None:
            inside.set()
            time.sleep(0.6 * BOUND_MS / 1000)

        other = threading.Thread(target=db.transaction, args=(slow,))
        other.start()
        assert inside.wait(5)
        with hold_sqlite_write_lock(path, 2.5 * BOUND_MS / 1000):
            started = time.monotonic()
            try:
                with pytest.raises(jexkv.BackendTimeout):
                    kv.set("k", 2)
                elapsed = time.monotonic() - started
            finally:
                other.join()
        assert elapsed < 1.6 * BOUND_MS / 1000, f"waited {elapsed:.2f} s"
