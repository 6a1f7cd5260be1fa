"""The SQLite task queue's own matters: its schema, upgrading a version 1 file, sharing a file.

The backend-independent process and crash tests (sharing work across processes, killed and
stalled workers, wake-ups, dedupe by job_id) run on SQLite and Redis in tests/processes.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time
from typing import Any

import pytest

import jexkv
from jexkv.sqlite.schema import SCHEMA_VERSION
from tests.helpers import wait_for

DEADLINE = 60.0  # seconds: the longest any single wait in this file may take


def _url(path: pathlib.Path) -> str:
    return "sqlite:///" + str(path)


def _raw(path: pathlib.Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(str(path))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _user_version(path: pathlib.Path) -> int:
    return int(_raw(path, "PRAGMA user_version")[0][0])


def _tables(path: pathlib.Path) -> set[str]:
    return {row[0] for row in _raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


# --- 1. a KV store and a queue in one file -------------------------------------------------------


@pytest.mark.parametrize("queue_first", [False, True], ids=["kv_first", "queue_first"])
def test_kv_and_queue_share_one_file(tmp_path: pathlib.Path, queue_first: bool) -> None:
    path = tmp_path / "both" / "shared.db"
    url = _url(path)
    if queue_first:
        q = jexkv.open_queue(url)
        kv = jexkv.open_kv(url)
    else:
        kv = jexkv.open_kv(url)
        q = jexkv.open_queue(url)
    try:
        kv.set("greeting", {"hello": "world"})
        later = q.enqueue("mail", "later", {"n": 0}, delay_ms=3_600_000)
        done = threading.Event()

        def handle(job: jexkv.Job) -> str:
            kv.set("handled:" + job.id, job.payload)
            done.set()
            return "ok"

        q.register_worker("mail", handle)
        now = q.enqueue("mail", "now", {"n": 1})
        assert done.wait(DEADLINE)
        assert wait_for(lambda: kv.get("handled:" + now.id) == {"n": 1}, timeout=DEADLINE)
        assert kv.get("greeting") == {"hello": "world"}
        assert sorted(kv.keys()) == sorted(["greeting", "handled:" + now.id])
        assert kv.clear() == 2  # the KV store's rows only
        assert q.counts("mail")["delayed"] == 1
        got = q.get_job("mail", later.id)
        assert got is not None and got.state == "delayed" and got.payload == {"n": 0}
        assert list(kv.keys()) == []
    finally:
        q.close()
        kv.close()
    assert _user_version(path) == SCHEMA_VERSION
    assert {"kv", "jobs", "queue_pauses"} <= _tables(path)
    with jexkv.open_kv(url) as kv2, jexkv.open_queue(url) as q2:
        assert kv2.get("greeting") is None
        assert q2.counts("mail")["delayed"] == 1


# --- 2. a version 1 file is upgraded -------------------------------------------------------------


def test_a_version_1_kv_file_is_upgraded_in_place(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "v1.db"
    con = sqlite3.connect(str(path), isolation_level=None)
    try:  # exactly what jexkv 0.1 (schema version 1, KV only) wrote
        con.execute("PRAGMA auto_vacuum = INCREMENTAL")
        con.execute("PRAGMA journal_mode = WAL").fetchall()
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER)"
            " WITHOUT ROWID"
        )
        con.execute("CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL")
        expires = int(time.time() * 1000) + 3_600_000
        con.execute("INSERT INTO kv VALUES ('old', '{\"from\": \"v1\"}', NULL)")
        con.execute("INSERT INTO kv VALUES ('ttl', '7', ?)", (expires,))
        con.execute("PRAGMA user_version = 1")
        con.execute("COMMIT")
    finally:
        con.close()
    assert _user_version(path) == 1

    url = _url(path)
    with jexkv.open_queue(url) as q:
        job = q.enqueue("up", "first", {"a": 1})
        assert q.counts("up")["waiting"] == 1
        got = q.get_job("up", job.id)
        assert got is not None and got.payload == {"a": 1}
    assert _user_version(path) == SCHEMA_VERSION
    assert {"kv", "jobs", "queue_pauses"} <= _tables(path)
    assert sorted(_raw(path, "SELECT key, value, expires_at FROM kv")) == [
        ("old", '{"from": "v1"}', None),
        ("ttl", "7", expires),
    ]
    with jexkv.open_kv(url) as kv:
        assert kv.get("old") == {"from": "v1"}
        assert kv.get("ttl") == 7
        assert 0 < kv.ttl_ms("ttl") <= 3_600_000
        kv.set("new", True)
        assert kv.get("new") is True
    with jexkv.open_queue(url) as q:
        assert q.counts("up")["waiting"] == 1  # reopening does not migrate again
    assert _user_version(path) == SCHEMA_VERSION
