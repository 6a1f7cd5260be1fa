"""wait_for on SQLite: the file's marks (schema version 5), an upgrade in place from version
4 (to 6, with the schedules table), a mark whose waiter died, and a waiter in another
process than the worker."""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import jexkv
from jexkv.sqlite import schema


def _version_4_file(path: pathlib.Path) -> None:
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA auto_vacuum = INCREMENTAL")
        con.execute("PRAGMA journal_mode = WAL").fetchall()
        con.execute("BEGIN IMMEDIATE")
        for version in (1, 2, 3, 4):
            for statement in schema._MIGRATIONS[version]:
                con.execute(statement)
        con.execute(
            "INSERT INTO jobs (queue, name, payload, state, priority, due_at, attempts,"
            " created_at) VALUES ('emails', 'send', '1', 'waiting', 0, 0, 1, 0)"
        )
        con.execute("PRAGMA user_version = 4")
        con.execute("COMMIT")
    finally:
        con.close()


def _marks(path: pathlib.Path) -> list[tuple]:
    con = sqlite3.connect(str(path))
    try:
        return con.execute("SELECT seq, until FROM job_waits").fetchall()
    finally:
        con.close()


def test_a_version_4_file_is_upgraded_and_its_jobs_can_be_waited_for(tmp_path):
    path = tmp_path / "v4.db"
    _version_4_file(path)
    with jexkv.open_queue(f"sqlite:///{path}") as q:
        [job] = q.jobs("emails")
        got: dict = {}
        waiter = threading.Thread(target=lambda: got.update(done=q.wait_for("emails", job.id)))
        waiter.start()
        time.sleep(0.1)  # the waiter waits before the job runs
        q.register_worker("emails", lambda job: job.payload + 1)
        waiter.join(10)
        assert (got["done"].state, got["done"].result) == ("completed", 2)
        q.schedule("emails", "later", "send", 3, every_ms=60_000, start_at_ms=2**40)  # version 6
        assert [s.id for s in q.schedules("emails")] == ["later"]
        q.unschedule("emails", "later")
    con = sqlite3.connect(str(path))
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0  # keep 0 again
    finally:
        con.close()
    assert _marks(path) == []


def test_a_mark_whose_waiter_died_keeps_the_job_only_until_it_ends(tmp_path):
    path = tmp_path / "q.db"
    with jexkv.open_queue(f"sqlite:///{path}") as q:
        kept = q.enqueue("emails", "send", 1)
        gone = q.enqueue("emails", "send", 2)
        con = sqlite3.connect(str(path), isolation_level=None)
        now = int(time.time() * 1000)
        # A live mark (its waiter still waits) and one that ran out (a waiter that died).
        con.execute("INSERT INTO job_waits VALUES (?, 'alive', ?)", (int(kept.id), now + 60_000))
        con.execute("INSERT INTO job_waits VALUES (?, 'dead', ?)", (int(gone.id), now - 1))
        con.close()
        q.register_worker("emails", lambda job: "ok")
        deadline = time.monotonic() + 5
        while q.counts("emails")["waiting"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert q.get_job("emails", kept.id).state == "completed"  # watched: kept
        assert q.get_job("emails", gone.id) is None  # its mark had ended: keep 0
        # The next waiter to leave drops the marks that ran out.
        assert q.wait_for("emails", kept.id).result == "ok"
    assert [seq for seq, _ in _marks(path)] == [int(kept.id)]  # the live one stays


WORKER = textwrap.dedent(
    """
    import sys, time, jexkv
    with jexkv.open_queue(sys.argv[1]) as q:
        q.register_worker("emails", lambda job: {"sent": job.payload})
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_waiter_sees_a_job_another_process_finishes(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with jexkv.open_queue(url) as q:
        jobs = [q.enqueue("emails", "send", n) for n in range(3)]
        results: dict = {}

        def wait(job):
            results[job.id] = q.wait_for("emails", job.id, timeout_ms=15_000)

        threads = [threading.Thread(target=wait, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        child = subprocess.Popen([sys.executable, "-c", WORKER, url, "3"])
        try:
            for thread in threads:
                thread.join(20)
        finally:
            child.wait(20)
        assert {job_id: r.result for job_id, r in results.items()} == {
            job.id: {"sent": n} for n, job in enumerate(jobs)
        }
        assert q.counts("emails")["completed"] == 0
