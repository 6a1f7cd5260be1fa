"""SQLite under faults: SIGKILL in the middle of writes, 8 processes on one file, read-only
files and folders, and a full disk.

* SIGKILL loop: a writer process (sqlite_worker.py ``writer``) is killed at random moments,
  again and again; after each kill the file passes ``PRAGMA integrity_check``, and at the end
  every write the writer saw acknowledged is in the file (the last acknowledged value of each
  key or a later one still in flight, incr totals within bounds, every acknowledged job).
  A worker killed in the middle of a batch: jobs recorded completed stay completed and are not
  run again, every other job is completed by a later worker, and none vanishes.
* 8 processes with mixed KV and queue load on one file: no ``database is locked`` (nor any
  other exception) reaches a caller, and the totals add up (incr, pop, every job exactly once).
* Read-only file and folder: writes raise BackendUnavailable naming the file, reads of a
  valid file still work where SQLite can read it, and the file's bytes do not change. As root,
  file permissions do not stop anything, so the file or folder is made immutable with
  ``chattr +i`` instead (skipped with the reason when that is not possible).
* Full disk: RLIMIT_FSIZE in a child process (writes fail with EFBIG), and a tiny tmpfs when
  the test may mount one (root): a BackendUnavailable naming the file reaches the caller, the
  process goes on, and once there is room again the file passes ``integrity_check`` with every
  acknowledged write in it.

Set JEXKV_FAULT_SEED to replay the random kill moments of a failed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import jexkv
from tests.helpers import StartProcess, wait_for, worker_script

WORKER = pathlib.Path(__file__).resolve().parent / "sqlite_worker.py"
DEADLINE = 60.0  # seconds: the longest any single wait in this file may take
KILLS = 12  # SIGKILL rounds of the writer
PROCS = 8  # processes sharing one file in the load test
LOAD_SECONDS = 3.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")

Spawn = Callable[..., "subprocess.Popen[bytes]"]


def _url(path: pathlib.Path) -> str:
    return "sqlite:///" + str(path)


def _seed() -> int:
    return int(os.environ.get("JEXKV_FAULT_SEED") or random.randrange(1 << 30))


def _lines(path: pathlib.Path) -> list[str]:
    """The complete lines of a file another process may still be appending to."""
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


def _records(path: pathlib.Path) -> list[dict]:
    """The JSON records of an operation log whose writer may have been killed in the middle
    of a line: the torn record is dropped (its operation then counts as in flight, neither
    acknowledged nor refused) and the next writer's record, appended to it, is kept."""
    records = []
    for line in _lines(path):
        try:
            records.append(json.loads(line))
        except ValueError:
            start = line.rfind('{"ph"')
            if start > 0:
                records.append(json.loads(line[start:]))
    return records


def _stderr(folder: pathlib.Path, index: str) -> str:
    err = folder / f"err-{index}.txt"
    return err.read_text(errors="replace")[-3000:] if err.exists() else ""


def _integrity(path: pathlib.Path, *, read_only: bool = False) -> str:
    """``PRAGMA integrity_check`` of the file, through a plain sqlite3 connection."""
    if read_only:  # closing it never checkpoints: the next process still finds the WAL
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:
        con = sqlite3.connect(str(path))
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()
    return "; ".join(str(row[0]) for row in rows)


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kill(proc: subprocess.Popen[bytes], folder: pathlib.Path, index: str) -> None:
    assert proc.poll() is None, (
        f"process {index} exited by itself ({proc.returncode}) before the kill: "
        f"{_stderr(folder, index)}"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def spawn(start_process: StartProcess, tmp_path: pathlib.Path) -> Spawn:
    """Start sqlite_worker.py processes; every one still running at the end is killed."""
    return worker_script(start_process, WORKER, tmp_path)


# -- SIGKILL in the middle of writes ----------------------------------------------------------


def _check_acknowledged(path: pathlib.Path, ops: list[dict[str, Any]], context: str) -> int:
    """Every acknowledged write of the writer's log is in the file; returns how many there were."""
    intents = [op for op in ops if op["ph"] == "i"]
    acks = {op["tag"]: op for op in ops if op["ph"] == "a"}
    # Per key, its writes in order (each key belongs to one writer thread, and each round's
    # process is dead before the next starts, so the log order is the order of the writes).
    writes: dict[str, list[tuple[str, str]]] = defaultdict(list)  # key -> [(value, tag)]
    incr_acked: Counter[str] = Counter()
    incr_pending: Counter[str] = Counter()
    for op in intents:
        if op["op"] == "set":
            writes[op["k"]].append((op["v"], op["tag"]))
        elif op["op"] == "set_many":
            for key, value in op["m"].items():
                writes[key].append((value, op["tag"]))
        elif op["op"] == "incr":
            (incr_acked if op["tag"] in acks else incr_pending)[op["k"]] += op["by"]
    assert len(acks) >= 20, f"too few acknowledged writes to mean anything ({context})"

    with jexkv.open_kv(_url(path)) as kv, jexkv.open_queue(_url(path)) as q:
        for key, history in writes.items():
            acked = [i for i, (_, tag) in enumerate(history) if tag in acks]
            start = acked[-1] if acked else 0
            allowed = [value for value, _ in history[start:]]
            if not acked:
                allowed.append(None)
            actual = kv.get(key)
            assert actual in allowed, (
                f"{key} = {actual!r}: its last acknowledged write was "
                f"{history[acked[-1]] if acked else None}, later writes {history[start + 1 :]} "
                f"({context})"
            )
        # A set_many still in flight at a kill: all of it or none of it (keys not rewritten).
        for op in intents:
            if op["op"] != "set_many" or op["tag"] in acks:
                continue
            last = {k: v for k, v in op["m"].items() if writes[k][-1][1] == op["tag"]}
            landed = {k: kv.get(k) == v for k, v in last.items()}
            assert len(set(landed.values())) <= 1, f"half a set_many: {landed} ({context})"
        for key in set(incr_acked) | set(incr_pending):
            actual = kv.get(key) or 0
            low, high = incr_acked[key], incr_acked[key] + incr_pending[key]
            assert low <= actual <= high, f"{key} = {actual}, acknowledged {low} ({context})"
        for op in intents:
            if op["op"] == "incr" and op["tag"] in acks:
                assert acks[op["tag"]]["ret"] <= (kv.get(op["k"]) or 0)

        kept = {job.payload["tag"]: job for job in q.jobs("crash", "waiting", limit=10**6)}
        for op in intents:
            if op["op"] == "enqueue":
                tags, ids = [op["p"]["tag"]], [acks[op["tag"]]["ret"]] if op["tag"] in acks else []
            elif op["op"] == "enqueue_many":
                tags = [p["tag"] for p in op["p"]]
                ids = acks[op["tag"]]["ret"] if op["tag"] in acks else []
            else:
                continue
            if ids:
                for tag, job_id in zip(tags, ids):
                    job = q.get_job("crash", job_id)
                    assert job is not None, f"acknowledged job {job_id} ({tag}) lost ({context})"
                    assert job.payload == {"tag": tag}
            else:  # in flight at a kill: all of an enqueue_many or none of it
                present = {tag in kept for tag in tags}
                assert len(present) == 1, f"half an enqueue_many: {tags} ({context})"
        assert len(kept) == q.counts("crash")["waiting"]
    return len(acks)


def test_sigkill_during_writes_keeps_the_file_and_every_acknowledged_write(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    db = tmp_path / "db" / "crash.db"
    url = _url(db)
    context = f"JEXKV_FAULT_SEED={seed}"
    for rnd in range(KILLS):
        index = str(rnd)
        proc = spawn("writer", url, index, {"round": rnd, "threads": 2})
        if rnd % 2 == 0:
            # Some rounds are killed at any moment, even while opening the file (creating it,
            # in round 0); the others once the writer threads are running.
            time.sleep(rng.uniform(0.05, 0.6))
        else:
            ok = wait_for(
                lambda: (tmp_path / f"ready-{index}").exists() or proc.poll() is not None,  # noqa: B023
                timeout=DEADLINE,
            )
            assert ok, f"writer {index} never got ready"
            time.sleep(rng.uniform(0.02, 0.4))
        _kill(proc, tmp_path, index)
        # Nothing a writer thread called raised (a thread that raised would have gone on
        # silently, its traceback on stderr).
        assert not _stderr(tmp_path, index), f"writer {index}: {_stderr(tmp_path, index)}"
        if db.exists():
            result = _integrity(db, read_only=True)
            assert result == "ok", f"after kill {rnd + 1}: {result} ({context})"
    ops = _records(tmp_path / "ops.jsonl")
    assert _integrity(db) == "ok"
    _check_acknowledged(db, ops, context)
    assert _integrity(db) == "ok"


def test_a_worker_killed_mid_batch_loses_no_job_and_reruns_no_completed_one(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    total = 300
    url = _url(tmp_path / "batch.db")
    cfg = {"lease_ms": 500, "max_stalls": 10, "sleep": 0.003, "concurrency": 2}
    with jexkv.open_queue(url, keep_completed=10**6) as q:
        items = [{"name": "b", "payload": {"n": n}} for n in range(total)]
        ids = [job.id for job in q.enqueue_many("batch", items)]
        snapshots: list[dict[str, Any]] = []
        killed = ["0", "1", "2"]
        for index in killed:
            before = sum(len(_lines(tmp_path / f"ran-{i}.txt")) for i in killed)
            proc = spawn("batch", url, index, cfg)
            ok = wait_for(
                lambda: (
                    len(_lines(tmp_path / f"ran-{index}.txt")) >= 15  # noqa: B023
                    or proc.poll() is not None  # noqa: B023
                ),
                timeout=DEADLINE,
            )
            assert ok, f"worker {index} ran nothing: {_stderr(tmp_path, index)}"
            # Completed before the kill: recorded in the file, so acknowledged.
            snapshots.append(
                {job.id: job.result for job in q.jobs("batch", "completed", limit=total)}
            )
            _kill(proc, tmp_path, index)
            assert sum(len(_lines(tmp_path / f"ran-{i}.txt")) for i in killed) > before
        survivor = spawn("batch", url, "final", cfg)
        ok = wait_for(lambda: q.counts("batch")["completed"] == total, timeout=DEADLINE)
        counts = q.counts("batch")
        (tmp_path / "stop").touch()
        survivor.wait(timeout=DEADLINE)
        assert survivor.returncode == 0, _stderr(tmp_path, "final")
        assert ok, f"not every job completed: {counts}"
        assert q.counts("batch") == {
            "waiting": 0, "delayed": 0, "active": 0, "completed": total, "dead": 0
        }  # fmt: skip
        final = {job_id: q.get_job("batch", job_id) for job_id in ids}

    runs = {i: Counter(_lines(tmp_path / f"ran-{i}.txt")) for i in [*killed, "final"]}
    assert not [j for j, job in final.items() if job is None or job.state != "completed"]
    for k, snapshot in enumerate(snapshots):
        for job_id, result in snapshot.items():
            job = final[job_id]
            assert job is not None and job.result == result, f"job {job_id} changed after kill"
            again = [i for i in [*killed[k + 1 :], "final"] if runs[i][job_id]]
            assert not again, f"job {job_id}, completed before kill {k + 1}, ran again in {again}"
    ran = Counter[str]()
    for counter in runs.values():
        ran.update(counter)
    assert set(ran) == set(ids), "some job never ran"
    assert sum(runs["final"].values()) > 0, "the kills left the survivor nothing to do"


# -- 8 processes on one file ------------------------------------------------------------------


def test_eight_processes_on_one_file_never_see_database_is_locked(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    db = tmp_path / "shared.db"
    url = _url(db)
    # The schema exists before the crowd arrives (a crowd creating it is the next test's).
    jexkv.open_kv(url).close()
    cfg = {"procs": PROCS, "duration": LOAD_SECONDS, "seed": _seed()}
    procs = {str(i): spawn("load", url, str(i), cfg) for i in range(PROCS)}

    def all_have(name: str) -> bool:
        return all((tmp_path / name.format(i)).exists() for i in procs) or any(
            p.poll() is not None for p in procs.values()
        )

    assert wait_for(lambda: all_have("ready-{}"), timeout=DEADLINE), "processes never got ready"
    for i, p in procs.items():
        assert p.poll() is None, (
            f"process {i} exited early ({p.returncode}): {_stderr(tmp_path, i)}"
        )
    (tmp_path / "go").touch()
    assert wait_for(lambda: all_have("produced-{}.json"), timeout=DEADLINE)
    with jexkv.open_queue(url) as q:
        drained = wait_for(
            lambda: sum(q.counts("load")[s] for s in ("waiting", "delayed", "active")) == 0,
            timeout=DEADLINE,
        )
        (tmp_path / "stop").touch()
        for i, p in procs.items():
            p.wait(timeout=DEADLINE)
            assert p.returncode == 0, f"process {i} exited {p.returncode}: {_stderr(tmp_path, i)}"
        assert drained, f"jobs left: {q.counts('load')}"
        counts = q.counts("load")
    results = {i: json.loads((tmp_path / f"result-{i}.json").read_text()) for i in procs}

    timeout_s = 10.0  # busy_timeout_ms' default
    errors = [(i, e) for i, r in results.items() for e in r["errors"]]
    early = [
        (i, e) for i, e in errors if "BackendTimeout" not in e["type"] or e["secs"] < timeout_s
    ]
    assert not early, f"errors reached callers: {early[:10]}"
    assert not errors, f"BackendTimeout after {timeout_s} s under this load: {errors[:10]}"
    logged = [(i, line) for i, r in results.items() for line in r["log"]]
    assert not logged, f"workers logged problems: {logged[:10]}"
    assert not [(i, r["close_errors"]) for i, r in results.items() if r["close_errors"]]
    assert not [(i, r["bad_reads"]) for i, r in results.items() if r["bad_reads"]]

    with jexkv.open_kv(url) as kv:
        incrs = sorted(n for r in results.values() for n in r["incrs"])
        assert incrs == list(range(1, len(incrs) + 1)), "incr returned a value twice or skipped"
        assert (kv.get("ctr") or 0) == len(incrs)
        popped = Counter(key for r in results.values() for key in r["popped"])
        assert not [key for key, n in popped.items() if n > 1], "a token popped twice"
        for r in results.values():
            for key in r["tokens"]:
                assert (key in popped) != (kv.get(key) is not None), f"token {key}"
    jobs = [job_id for r in results.values() for job_id in r["jobs"]]
    executed = Counter[str]()
    for i in procs:
        executed.update(_lines(tmp_path / f"exec-{i}.txt"))
    assert len(set(jobs)) == len(jobs)
    assert set(executed) == set(jobs), "a job never ran, or an unknown one did"
    assert not [j for j, n in executed.items() if n != 1], "a job ran more than once"
    assert counts == {"waiting": 0, "delayed": 0, "active": 0, "completed": len(jobs), "dead": 0}
    assert sum(r["calls"] for r in results.values()) > 100 * PROCS  # the load was real
    assert _integrity(db) == "ok"


@pytest.mark.parametrize("kind", ["kv", "queue"])
def test_a_process_opening_a_new_file_while_another_creates_it_is_not_refused(
    tmp_path: pathlib.Path, spawn: Spawn, kind: str
) -> None:
    """Two processes open a new file at once; one is descheduled while checking the file.

    The child process pauses right after its first ``PRAGMA user_version`` read (0: the file is
    new), while this process opens the same file and creates the schema; then the child goes on.
    Both must end up with the file open, never a "holds tables jexkv did not create" refusal.
    """
    url = _url(tmp_path / "new.db")
    child = spawn("pause-open", url, "pause", {"kind": kind}, stdout=subprocess.PIPE)
    assert wait_for(
        lambda: (tmp_path / "paused").exists() or child.poll() is not None, timeout=DEADLINE
    ), "the child never reached the pause"
    assert child.poll() is None, f"the child exited early: {_stderr(tmp_path, 'pause')}"
    outcome: list[BaseException | None] = []

    def open_here() -> None:
        try:
            jexkv.open_queue(url).close() if kind == "kv" else jexkv.open_kv(url).close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=open_here)
    thread.start()
    # This open either finishes or waits for the child's read (a correct check holds one
    # read transaction); the child goes on after a moment either way.
    thread.join(timeout=1.0)
    (tmp_path / "resume").touch()
    thread.join(timeout=DEADLINE)
    out_bytes, _ = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, _stderr(tmp_path, "pause")
    out = json.loads(out_bytes)
    assert outcome == [None], f"this process's open failed: {outcome}"
    assert out == {"ok": True, "paused": True}, f"the paused process's open failed: {out}"
    assert _integrity(tmp_path / "new.db") == "ok"


# -- read-only files and folders --------------------------------------------------------------


@contextlib.contextmanager
def _read_only(*paths: pathlib.Path) -> Iterator[str]:
    """Make files and folders read-only (for root too); yields how it was done."""
    done: list[pathlib.Path] = []
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode & 0o7777 for p in paths}
        try:
            for p in paths:
                p.chmod(0o500 if p.is_dir() else 0o400)
                done.append(p)
            yield "chmod"
        finally:
            for p in done:
                p.chmod(modes[p])
        return
    # Root ignores permissions: an immutable file (or folder) stops root as well.
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root, and no chattr to make a file immutable for root")
    try:
        for p in paths:
            res = subprocess.run([chattr, "+i", str(p)], capture_output=True, text=True)
            if res.returncode != 0:
                pytest.skip(f"running as root, and chattr +i failed here: {res.stderr.strip()}")
            done.append(p)
        yield "chattr +i"
    finally:
        for p in done:
            subprocess.run([chattr, "-i", str(p)], check=True)


def _filled(path: pathlib.Path) -> None:
    with jexkv.open_kv(_url(path)) as kv, jexkv.open_queue(_url(path)) as q:
        kv.set("a", {"v": 1})
        kv.set_many({f"m{i}": i for i in range(10)})
        kv.incr("n", 5)
        q.enqueue("ro", "job", {"x": 1}, job_id="j1")
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    assert not leftovers, f"close() left {leftovers} next to the file"


def _refused(fn: Callable[[], object], path: pathlib.Path) -> jexkv.BackendError:
    with pytest.raises(jexkv.JexkvError) as info:
        fn()
    exc = info.value
    assert isinstance(exc, jexkv.BackendUnavailable), repr(exc)
    assert str(path) in str(exc), f"the error does not name the file: {exc}"
    return exc


def test_a_read_only_file_refuses_writes_clearly_and_stays_byte_for_byte(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "ro" / "data.db"
    _filled(path)
    before = _sha256(path)
    with _read_only(path):
        with jexkv.open_kv(_url(path)) as kv, jexkv.open_queue(_url(path)) as q:
            assert kv.get("a") == {"v": 1}
            assert kv.get_many(["m1", "m9"]) == {"m1": 1, "m9": 9}
            assert sorted(kv.keys("m")) == [f"m{i}" for i in range(10)]
            assert kv.ttl_ms("a") == -1
            assert q.counts("ro")["waiting"] == 1
            job = q.get_job("ro", "j1")
            assert job is not None and job.payload == {"x": 1}
            exc = _refused(lambda: kv.set("a", 2), path)
            assert "readonly" in str(exc) or "read-only" in str(exc) or "read only" in str(exc)
            _refused(lambda: kv.incr("n"), path)
            _refused(lambda: kv.set_many({"b": 1, "c": 2}), path)
            _refused(lambda: kv.delete("a", "m1"), path)
            _refused(lambda: kv.pop("a"), path)
            _refused(lambda: q.enqueue("ro", "job", {"x": 2}), path)
            assert kv.get("a") == {"v": 1} and kv.get("n") == 5  # still readable after
        assert _sha256(path) == before
    assert _sha256(path) == before
    assert _integrity(path) == "ok"


def test_a_read_only_folder_gives_a_clear_error_and_leaves_the_file_alone(
    tmp_path: pathlib.Path,
) -> None:
    folder = tmp_path / "ro"
    path = folder / "data.db"
    _filled(path)
    before = _sha256(path)
    with _read_only(folder, path):
        # A WAL file needs its -shm and -wal files next to it, which a read-only folder
        # cannot take: SQLite cannot even read it then, so the open itself must fail clearly.
        try:
            kv = jexkv.open_kv(_url(path))
        except jexkv.JexkvError as exc:
            assert isinstance(exc, jexkv.BackendUnavailable), repr(exc)
            assert str(path) in str(exc), f"the error does not name the file: {exc}"
        else:
            with kv:
                assert kv.get("a") == {"v": 1}
                _refused(lambda: kv.set("a", 2), path)
        # A new file cannot be created there.
        _refused(lambda: jexkv.open_kv(_url(folder / "new.db")), folder / "new.db")
        _refused(lambda: jexkv.open_queue(_url(folder / "new.db")), folder / "new.db")
        assert sorted(p.name for p in folder.iterdir()) == ["data.db"]
    assert _sha256(path) == before
    assert _integrity(path) == "ok"


# -- a full disk ----------------------------------------------------------------------------


def _base(path: pathlib.Path) -> None:
    with jexkv.open_kv(_url(path)) as kv, jexkv.open_queue(_url(path)) as q:
        kv.set("base", {"v": "kept"})
        kv.set_many({f"b{i}": i for i in range(20)})
        q.enqueue_many("base", [{"name": "b", "payload": {"n": n}} for n in range(10)])


def _check_full_disk(
    tmp_path: pathlib.Path,
    spawn: Spawn,
    path: pathlib.Path,
    cfg: dict[str, Any],
    words: tuple[str, ...],
    lift: Callable[[], None],
) -> None:
    proc = spawn("fill", _url(path), "fill", {**cfg, "path": str(path)}, stdout=subprocess.PIPE)
    out_bytes, _ = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, (
        f"the process died ({proc.returncode}): {_stderr(tmp_path, 'fill')}"
    )
    out = json.loads(out_bytes)
    error = out["error"]
    assert error is not None, f"the disk never got full after {len(out['acked'])} writes"
    kind = getattr(jexkv, error["type"].rsplit(".", 1)[-1], None)
    assert kind is jexkv.BackendUnavailable, f"expected BackendUnavailable, got {error}"
    assert str(path) in error["msg"], f"the error does not name the file: {error}"
    assert any(w in error["msg"] for w in words), f"the error does not say why: {error}"
    probes = out["probes"]
    # Reads go on working; writes fail the same clear way (or succeed if there was room).
    assert probes["get base"] == {"ok": {"v": "kept"}}, probes
    assert probes["get base again"] == {"ok": {"v": "kept"}}, probes
    assert probes["get fill0"] == {"ok": 0 if out["acked"] else None}, probes
    assert probes["counts"].get("ok", {}).get("waiting") == 10, probes
    for name in ("set", "incr", "set_many", "enqueue"):
        if "ok" not in probes[name]:
            kind = getattr(jexkv, probes[name]["type"].rsplit(".", 1)[-1], None)
            assert kind is jexkv.BackendUnavailable, f"{name}: {probes[name]}"
    assert out["close"] == [], out["close"]

    lift()
    assert _integrity(path) == "ok"
    with jexkv.open_kv(_url(path)) as kv, jexkv.open_queue(_url(path)) as q:
        assert kv.get("base") == {"v": "kept"}
        assert kv.get_many([f"b{i}" for i in range(20)]) == {f"b{i}": i for i in range(20)}
        got = kv.get_many([f"fill{n}" for n in out["acked"]])
        assert sorted(v["n"] for v in got.values()) == out["acked"], "acknowledged writes lost"
        assert q.counts("base")["waiting"] == 10
        # The probes that succeeded on the full disk were acknowledged too.
        if "ok" in probes["set"]:
            assert kv.get("after") == 1
        if "ok" in probes["incr"]:
            assert kv.get("base-ctr") == probes["incr"]["ok"]
        if "ok" in probes["set_many"]:
            assert kv.get_many(["m1", "m2"]) == {"m1": 1, "m2": 2}
        if "ok" in probes["enqueue"]:
            assert q.get_job("fill", probes["enqueue"]["ok"]) is not None
        kv.set("after", "room again")
        assert kv.get("after") == "room again"
    assert _integrity(path) == "ok"


def test_a_file_size_limit_fails_writes_clearly_and_keeps_the_file(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    """RLIMIT_FSIZE in the child (SIGXFSZ ignored): write() fails with EFBIG, as on a full disk."""
    path = tmp_path / "limit" / "data.db"
    _base(path)
    # SQLite reports EFBIG as SQLITE_IOERR_WRITE, "disk I/O error" (ENOSPC is "disk is full").
    words = ("disk I/O error", "full", "too large")
    _check_full_disk(tmp_path, spawn, path, {"limit": 200_000}, words, lambda: None)


def test_a_full_tmpfs_fails_writes_clearly_and_keeps_the_file(
    tmp_path: pathlib.Path, spawn: Spawn
) -> None:
    """A 1 MB tmpfs (needs root and CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    folder = tmp_path / "small"
    folder.mkdir()
    res = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        path = folder / "data.db"
        _base(path)

        def lift() -> None:
            subprocess.run([mount, "-o", "remount,size=16m", str(folder)], check=True)

        _check_full_disk(tmp_path, spawn, path, {}, ("full",), lift)
    finally:
        umount = shutil.which("umount") or "umount"
        if subprocess.run([umount, str(folder)], capture_output=True).returncode != 0:
            subprocess.run([umount, "-l", str(folder)], check=False)
