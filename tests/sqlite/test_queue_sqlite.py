"""SQLite task queue across processes: sharing, crashes, stalls, schema and wake-ups.

The worker processes run tests/sqlite/queue_workers/worker.py (its docstring lists the modes).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import jexkv
from tests.helpers import wait_for

REPO_ROOT = pathlib.Path(jexkv.__file__).resolve().parent.parent
WORKER = pathlib.Path(__file__).resolve().parent / "queue_workers" / "worker.py"
DEADLINE = 60.0  # seconds: the longest any single wait in this file may take
IDLE = ("waiting", "delayed", "active", "dead")

Spawn = Callable[..., "subprocess.Popen[bytes]"]


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


def _lines(path: pathlib.Path) -> list[str]:
    """The complete lines of a file another process may still be appending to."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.split("\n")[:-1]


def _records(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(path)]


def _stderr(folder: pathlib.Path, index: str) -> str:
    err = folder / f"err-{index}.txt"
    return err.read_text(errors="replace") if err.exists() else ""


@pytest.fixture
def spawn(tmp_path: pathlib.Path) -> Iterator[Spawn]:
    """Start worker processes; every one still running at the end is killed."""
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))

    def start(
        mode: str, url: str, index: str, cfg: dict[str, Any] | None = None
    ) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"err-{index}.txt", "wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    mode,
                    url,
                    str(tmp_path),
                    index,
                    json.dumps(cfg or {}),
                ],
                env=env,
                cwd=str(tmp_path),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _wait_ready(folder: pathlib.Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    ok = wait_for(
        lambda: (
            all((folder / f"ready-{i}").exists() for i in procs)
            or any(p.poll() is not None for p in procs.values())
        ),
        timeout=DEADLINE,
    )
    for i, p in procs.items():
        assert p.poll() is None, f"worker {i} exited early ({p.returncode}): {_stderr(folder, i)}"
    assert ok and all((folder / f"ready-{i}").exists() for i in procs), "workers never got ready"


def _stop_and_join(folder: pathlib.Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    (folder / "stop").touch()
    for i, p in procs.items():
        try:
            p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {i} did not exit after the stop file: {_stderr(folder, i)}")
        assert p.returncode == 0, f"worker {i} exited {p.returncode}: {_stderr(folder, i)}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL


def _wait_records(
    folder: pathlib.Path, name: str, proc: subprocess.Popen[bytes], n: int = 1
) -> list[dict[str, Any]]:
    path = folder / name
    wait_for(lambda: len(_lines(path)) >= n or proc.poll() is not None, timeout=DEADLINE)
    records = _records(path)
    assert len(records) >= n, f"{name}: {len(records)} runs seen, expected {n}; worker stderr: " + (
        _stderr(folder, name.split("-")[1].split(".")[0])
    )
    return records


# --- 1. many processes share one file ----------------------------------------------------------


def test_four_processes_drain_every_job_exactly_once(tmp_path: pathlib.Path, spawn: Spawn) -> None:
    path = tmp_path / "db" / "drain.db"
    url = _url(path)
    total, nprocs = 3_000, 4
    with jexkv.open_queue(url) as q:
        q.counts("work")  # creates the file before the workers race for it
        cfg = {"queue": "work", "concurrency": 4, "sleep": 0.001}
        procs = {str(i): spawn("drain", url, str(i), cfg) for i in range(nprocs)}
        _wait_ready(tmp_path, procs)
        expected: dict[str, int] = {}
        for start in range(0, total, 500):  # enqueued while the workers already run
            jobs = q.enqueue_many(
                "work", [{"name": "w", "payload": {"n": n}} for n in range(start, start + 500)]
            )
            assert [j.payload["n"] for j in jobs] == list(range(start, start + 500))
            expected.update({j.id: j.payload["n"] for j in jobs})
        assert len(expected) == total  # ids are unique

        def drained() -> bool:
            done = sum(len(_lines(tmp_path / f"exec-{i}.txt")) for i in procs)
            if any(p.poll() is not None for p in procs.values()):
                return True
            counts = q.counts("work")
            return done >= total and all(counts[k] == 0 for k in ("waiting", "delayed", "active"))

        assert wait_for(drained, timeout=DEADLINE), f"not drained in time: {q.counts('work')}"
        _stop_and_join(tmp_path, procs)
        counts = q.counts("work")
        assert {k: counts[k] for k in IDLE} == {k: 0 for k in IDLE}, counts

    seen: Counter[str] = Counter()
    per_process: dict[str, int] = {}
    for i, proc in procs.items():
        lines = _lines(tmp_path / f"exec-{i}.txt")
        per_process[i] = len(lines)
        for line in lines:
            pid, job_id, n = line.split()
            assert int(pid) == proc.pid
            assert expected[job_id] == int(n)
            seen[job_id] += 1
    assert sum(seen.values()) == total, f"{sum(seen.values())} executions for {total} jobs"
    assert set(seen) == set(expected)
    assert [job_id for job_id, c in seen.items() if c != 1] == []
    assert all(n > 0 for n in per_process.values()), f"work not shared: {per_process}"
    print(f"\njobs handled per process: {per_process}")


# --- 2. a worker killed mid-job ------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_job_whose_worker_was_killed_runs_again(
    tmp_path: pathlib.Path, spawn: Spawn, attempts: int
) -> None:
    path = tmp_path / "kill.db"
    url = _url(path)
    with jexkv.open_queue(url) as q:
        job = q.enqueue("crash", "fragile", {"x": [1, 2]}, attempts=attempts)
        first = spawn("hang", url, "a", {"queue": "crash", "options": {"lease_ms": 500}})
        started = _wait_records(tmp_path, "started-a.jsonl", first)
        assert [(r["id"], r["attempts_made"], r["pid"]) for r in started] == [
            (job.id, 0, first.pid)
        ]
        _kill(first)

        cfg = {"queue": "crash", "options": {"lease_ms": 500, "keep_completed": 10}}
        second = spawn("record", url, "b", cfg)
        runs = _wait_records(tmp_path, "ran-b.jsonl", second)
        assert runs[0]["id"] == job.id
        assert runs[0]["payload"] == {"x": [1, 2]}
        assert runs[0]["attempts_made"] == 1  # the lost run counts
        assert runs[0]["pid"] == second.pid

        def finished() -> bool:
            counts = q.counts("crash")
            return all(counts[k] == 0 for k in IDLE)

        assert wait_for(finished, timeout=DEADLINE), q.counts("crash")
        done = q.get_job("crash", job.id)
        assert done is not None and done.state == "completed"  # kept: keep_completed=10
        assert done.result == {"ok": job.id}
        assert q.counts("crash")["completed"] == 1
        _stop_and_join(tmp_path, {"b": second})
        assert len(_records(tmp_path / "ran-b.jsonl")) == 1  # ran once more, not twice
        assert q.dead_letters("crash") == []


# --- 3. stalled too often: dead ------------------------------------------------------------------


def test_a_job_stalled_more_than_max_stalls_goes_dead(tmp_path: pathlib.Path, spawn: Spawn) -> None:
    path = tmp_path / "stall.db"
    url = _url(path)
    options = {"lease_ms": 300, "max_stalls": 1}
    with jexkv.open_queue(url, **options) as q:
        job = q.enqueue("stall", "doomed", {"k": "v"}, attempts=5)
        for index, made in (("1", 0), ("2", 1)):
            proc = spawn("hang", url, index, {"queue": "stall", "options": options})
            started = _wait_records(tmp_path, f"started-{index}.jsonl", proc)
            assert [(r["id"], r["attempts_made"]) for r in started] == [(job.id, made)]
            _kill(proc)

        ran: list[str] = []
        q.register_worker("stall", lambda j: ran.append(j.id))  # runs the stalled check
        assert wait_for(lambda: len(q.dead_letters("stall")) == 1, timeout=DEADLINE), q.counts(
            "stall"
        )
        dead = q.dead_letters("stall")[0]
        assert dead.id == job.id
        assert dead.state == "dead"
        assert dead.error is not None and dead.error.startswith("Stalled"), dead.error
        assert "talled" in dead.error
        assert dead.stall_count == 2
        assert dead.payload == {"k": "v"}
        assert ran == []  # not run a third time
        counts = q.counts("stall")
        assert {k: counts[k] for k in IDLE} == {"waiting": 0, "delayed": 0, "active": 0, "dead": 1}
        got = q.get_job("stall", job.id)
        assert got is not None and got.state == "dead"


# --- 4. a KV store and a queue in one file -------------------------------------------------------


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
    assert _user_version(path) == 2
    assert {"kv", "jobs"} <= _tables(path)
    with jexkv.open_kv(url) as kv2, jexkv.open_queue(url) as q2:
        assert kv2.get("greeting") is None
        assert q2.counts("mail")["delayed"] == 1


# --- 5. a version 1 file is upgraded -------------------------------------------------------------


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
    assert _user_version(path) == 2
    assert {"kv", "jobs"} <= _tables(path)
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
    assert _user_version(path) == 2


# --- 6. wake-up across processes -----------------------------------------------------------------


def test_an_idle_worker_process_wakes_for_a_new_job(tmp_path: pathlib.Path, spawn: Spawn) -> None:
    path = tmp_path / "wake.db"
    url = _url(path)
    with jexkv.open_queue(url) as q:
        q.counts("wake")
        proc = spawn("record", url, "w", {"queue": "wake"})
        _wait_ready(tmp_path, {"w": proc})
        latencies = []
        for n in range(3):
            time.sleep(0.3)  # the worker is idle, waiting for work
            t0 = time.time()
            job = q.enqueue("wake", "ping", {"n": n})
            runs = _wait_records(tmp_path, "ran-w.jsonl", proc, n + 1)
            assert len(runs) == n + 1
            assert (runs[n]["id"], runs[n]["payload"], runs[n]["attempts_made"]) == (
                job.id,
                {"n": n},
                0,
            )
            latencies.append(runs[n]["started"] - t0)
        _stop_and_join(tmp_path, {"w": proc})
        counts = q.counts("wake")
        assert {k: counts[k] for k in IDLE} == {k: 0 for k in IDLE}
    print(
        "\ncross-process wake-up latencies (ms): " + ", ".join(f"{s * 1000:.1f}" for s in latencies)
    )


# --- 7. dedupe by job_id across processes --------------------------------------------------------


def test_enqueue_with_one_job_id_from_many_processes_adds_one_job(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    path = tmp_path / "dedupe.db"
    url = _url(path)
    with jexkv.open_queue(url) as q:
        q.counts("dup")
    cfg = {"queue": "dup", "count": 50, "job_id": "same-id"}
    procs = {str(i): spawn("enqueue", url, str(i), cfg) for i in range(4)}
    _wait_ready(tmp_path, procs)
    (tmp_path / "go").touch()
    for i, p in procs.items():
        p.wait(timeout=DEADLINE)
        assert p.returncode == 0, _stderr(tmp_path, i)
    returned = []
    for i in procs:
        result = json.loads((tmp_path / f"result-{i}.json").read_text())
        assert result["errors"] == []
        assert len(result["jobs"]) == 50
        returned.extend(result["jobs"])
    with jexkv.open_queue(url) as q:
        counts = q.counts("dup")
        assert sum(counts[k] for k in ("waiting", "delayed", "active", "completed", "dead")) == 1
        assert counts["waiting"] == 1
        job = q.get_job("dup", "same-id")
        assert job is not None and job.name == "dup"
    # Every call returned that one job: the winner's payload, not its own.
    assert {r["id"] for r in returned} == {"same-id"}
    assert [r for r in returned if r["payload"] != job.payload] == []
    assert {r["created"] for r in returned} == {job.created_at_ms}
