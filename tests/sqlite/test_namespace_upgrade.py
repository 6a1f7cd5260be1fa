"""Upgrading a file from before namespaces had a boundary of their own (schema version 3).

Version 3 kept a namespaced key as one string, the namespace a raw prefix of it, so which
namespace a row belonged to cannot be told from the file. Version 4 gives every row a
namespace column; the upgrade keeps each row, with its full stored key, in the default
namespace (README, "Namespaces"), where nothing is lost and nothing is guessed.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time

import jexkv
from jexkv.sqlite import schema


def _version_3_file(path: pathlib.Path, rows: list[tuple[str, str, int | None]]) -> None:
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA auto_vacuum = INCREMENTAL")
        con.execute("PRAGMA journal_mode = WAL").fetchall()
        con.execute("BEGIN IMMEDIATE")
        for version in (1, 2, 3):
            for statement in schema._MIGRATIONS[version]:
                con.execute(statement)
        con.executemany("INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)", rows)
        con.execute(
            "INSERT INTO jobs (queue, name, payload, state, priority, due_at, attempts,"
            " created_at) VALUES ('app:emails', 'send', '1', 'waiting', 0, 0, 1, 0)"
        )
        con.execute("PRAGMA user_version = 3")
        con.execute("COMMIT")
    finally:
        con.close()


def test_a_version_3_file_keeps_every_key_in_the_default_namespace(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "v3.db"
    expires = int(time.time() * 1000) + 3_600_000
    _version_3_file(
        path,
        [("plain", '"p"', None), ("app:token", '{"u": 1}', expires), ("tenant1x", "7", None)],
    )
    url = f"sqlite:///{path}"
    with jexkv.open_kv(url) as default, jexkv.open_kv(url, namespace="app") as app:
        assert sorted(default.keys()) == ["app:token", "plain", "tenant1x"]
        assert default.get("app:token") == {"u": 1}
        assert 0 < default.ttl_ms("app:token") <= 3_600_000
        assert list(app.keys()) == []  # nothing guessed: the old prefix is not a namespace
        app.set("token", "new")
        assert default.get("app:token") == {"u": 1}
    con = sqlite3.connect(str(path))
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        indexes = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        assert "kv_expires_at" in indexes and "kv_by_ns" not in indexes
    finally:
        con.close()


def test_a_version_3_queue_in_a_namespace_that_ended_in_a_colon_keeps_its_jobs(
    tmp_path: pathlib.Path,
) -> None:
    # A queue of namespace "app:" was stored as "app:emails": the same name version 4 gives
    # the queue "emails" of namespace "app" (or "app:").
    path = tmp_path / "v3q.db"
    _version_3_file(path, [])
    with jexkv.open_queue(f"sqlite:///{path}", namespace="app:") as q:
        assert q.counts("emails")["waiting"] == 1
        assert q.jobs("emails")[0].name == "send"
