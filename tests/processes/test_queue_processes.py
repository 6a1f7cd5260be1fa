"""The task queue across processes, on every backend processes can share (SQLite and Redis).

Sharing the work, a worker killed mid-job, a job stalled too often, waking an idle worker process,
and one job_id enqueued from many processes. The worker processes run queue_worker.py (its
docstring lists the modes); conftest.py picks the backend and starts and kills the processes.
SQLite-only matters (the schema, its upgrade, a KV store sharing the file) stay in tests/sqlite.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

import jexkv
from tests.helpers import wait_for

if TYPE_CHECKING:
    from tests.processes.conftest import Backend, Spawn

DEADLINE = 60.0  # seconds: the longest any single wait in this file may take
IDLE = ("waiting", "delayed", "active", "dead")


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


# --- 1. many processes share one queue ---------------------------------------------------------


def test_four_processes_drain_every_job_exactly_once(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn
) -> None:
    url = backend.created_url("drain")
    total, nprocs = 3_000, 4
    with jexkv.open_queue(url) as q:
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
    print(f"\njobs handled per process ({backend.name}): {per_process}")


# --- 2. a worker killed mid-job ------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_job_whose_worker_was_killed_runs_again(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn, attempts: int
) -> None:
    url = backend.url("kill")
    lease = {"lease_ms": backend.lease_ms}
    with jexkv.open_queue(url) as q:
        job = q.enqueue("crash", "fragile", {"x": [1, 2]}, attempts=attempts)
        first = spawn("hang", url, "a", {"queue": "crash", "options": lease})
        started = _wait_records(tmp_path, "started-a.jsonl", first)
        assert [(r["id"], r["attempts_made"], r["pid"]) for r in started] == [
            (job.id, 0, first.pid)
        ]
        _kill(first)

        cfg = {"queue": "crash", "options": {**lease, "keep_completed": 10}}
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


def test_a_job_stalled_more_than_max_stalls_goes_dead(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn
) -> None:
    url = backend.url("stall")
    options = {"lease_ms": backend.lease_ms, "max_stalls": 1}
    with jexkv.open_queue(url, **options) as q:
        job = q.enqueue("stall", "doomed", {"k": "v"}, attempts=5)
        for index, made in (("1", 0), ("2", 1)):
            proc = spawn("hang", url, index, {"queue": "stall", "options": options})
            started = _wait_records(tmp_path, f"started-{index}.jsonl", proc)
            assert [(r["id"], r["attempts_made"]) for r in started] == [(job.id, made)]
            _kill(proc)

        # A live worker finds the stalled job (and on Redis, fails it when it fetches it next).
        ran: list[str] = []
        q.register_worker("stall", lambda j: ran.append(j.id))
        assert wait_for(lambda: len(q.dead_letters("stall")) == 1, timeout=DEADLINE), q.counts(
            "stall"
        )
        dead = q.dead_letters("stall")[0]
        assert dead.id == job.id
        assert dead.state == "dead"
        assert dead.error is not None and dead.error.startswith("Stalled"), dead.error
        assert dead.stall_count == 2
        assert dead.payload == {"k": "v"}
        assert ran == []  # not run a third time
        counts = q.counts("stall")
        assert {k: counts[k] for k in IDLE} == {"waiting": 0, "delayed": 0, "active": 0, "dead": 1}
        got = q.get_job("stall", job.id)
        assert got is not None and got.state == "dead"


# --- 4. wake-up across processes -----------------------------------------------------------------


def test_an_idle_worker_process_wakes_for_a_new_job(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn
) -> None:
    url = backend.created_url("wake")
    with jexkv.open_queue(url) as q:
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
        f"\ncross-process wake-up latencies ({backend.name}, ms): "
        + ", ".join(f"{s * 1000:.1f}" for s in latencies)
    )


# --- 5. dedupe by job_id across processes --------------------------------------------------------


def test_enqueue_with_one_job_id_from_many_processes_adds_one_job(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn
) -> None:
    url = backend.created_url("dedupe")
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
