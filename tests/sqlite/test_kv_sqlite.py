"""SQLite adapter internals: the file, its PRAGMAs, refusals, vacuuming, processes and locks."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import jexkv
from jexkv.sqlite.kv import SQLiteKV
from tests.helpers import hold_sqlite_write_lock, wait_for

REPO_ROOT = pathlib.Path(jexkv.__file__).resolve().parent.parent
LONG = 3_600_000  # an interval long enough that the vacuum thread never fires during a test


def _url(path: pathlib.Path) -> str:
    return "sqlite:///" + str(path)


def _raw(path: pathlib.Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    con = sqlite3.connect(str(path))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _raw_keys(path: pathlib.Path) -> set[str]:
    return {str(row[0]) for row in _raw(path, "SELECT key FROM kv")}


def _vacuum_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jexkv-vacuum"]


# --- the file -------------------------------------------------------------------------------


def test_file_and_folders_are_created_private(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x" / "y" / "app.db"
    with jexkv.open_kv(_url(path)) as kv:
        assert isinstance(kv, SQLiteKV)
        assert os.path.isabs(kv.path)
        assert os.path.samefile(kv.path, path)
        kv.set("k", 1)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for suffix in ("-wal", "-shm"):
            side = pathlib.Path(str(path) + suffix)
            if side.exists():
                assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_pragmas_and_schema(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.db"
    with jexkv.open_kv(_url(path), namespace="ns:") as kv:
        t0 = int(time.time() * 1000)
        kv.set("k", {"a": [1, 2]}, ttl_ms=60_000)
        t1 = int(time.time() * 1000)
        kv.set("plain", "v")
    assert _raw(path, "PRAGMA journal_mode")[0][0] == "wal"
    assert _raw(path, "PRAGMA auto_vacuum")[0][0] == 2
    assert int(_raw(path, "PRAGMA user_version")[0][0]) > 0  # type: ignore[call-overload]
    columns = [row[1] for row in _raw(path, "PRAGMA table_info(kv)")]
    assert columns == ["ns", "key", "value", "expires_at"]
    rows = {
        (row[0], row[1]): (row[2], row[3])
        for row in _raw(path, "SELECT ns, key, value, expires_at FROM kv")
    }
    assert json.loads(rows["ns", "k"][0]) == {"a": [1, 2]}  # type: ignore[arg-type]
    assert t0 + 60_000 <= rows["ns", "k"][1] <= t1 + 60_000 + 1  # type: ignore[operator]
    assert rows["ns", "plain"] == ('"v"', None)


def _snapshot(path: pathlib.Path) -> tuple[bytes, int, int, list[str]]:
    st = os.stat(path)
    return (
        path.read_bytes(),
        st.st_mtime_ns,
        stat.S_IMODE(st.st_mode),
        sorted(os.listdir(path.parent)),
    )


def _assert_refused_untouched(path: pathlib.Path) -> None:
    os.chmod(path, 0o644)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = _snapshot(path)
    with pytest.raises(jexkv.JexkvError) as excinfo:
        jexkv.open_kv(_url(path))
    message = str(excinfo.value)
    assert str(path) in message or "not a sqlite database" in message.lower()
    assert _snapshot(path) == before


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"hello, this is a text file\n" * 100],
    ids=["garbage", "text"],
)
def test_a_file_that_is_not_sqlite_is_refused_and_untouched(
    tmp_path: pathlib.Path, content: bytes
) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(content)
    _assert_refused_untouched(path)


@pytest.mark.parametrize(
    "statements",
    [
        ["CREATE TABLE other (x)", "PRAGMA user_version = 999"],
        ["CREATE TABLE kv (a TEXT, b TEXT)"],
        ["CREATE TABLE kv (a TEXT, b TEXT)", "PRAGMA user_version = 1"],
    ],
    ids=["user_version_999", "kv_other_columns", "kv_other_columns_v1"],
)
def test_an_unknown_sqlite_schema_is_refused_and_untouched(
    tmp_path: pathlib.Path, statements: list[str]
) -> None:
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(str(path))
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()
    _assert_refused_untouched(path)


def test_an_empty_file_is_accepted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with jexkv.open_kv(_url(path)) as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1
    assert int(_raw(path, "PRAGMA user_version")[0][0]) > 0  # type: ignore[call-overload]
    assert _raw_keys(path) == {"k"}


def test_reopening_keeps_the_data(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "again.db"
    with jexkv.open_kv(_url(path)) as kv:
        kv.set("k", [1, "two"])
    with jexkv.open_kv(_url(path)) as kv:
        assert kv.get("k") == [1, "two"]


# --- reads and the vacuum -------------------------------------------------------------------


def test_reads_filter_expired_rows_without_deleting_them(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reads.db"
    with jexkv.open_kv(_url(path), vacuum_interval_ms=LONG) as kv:
        kv.set("old", 1, ttl_ms=1)
        kv.set("live", 2, ttl_ms=60_000)
        kv.set("plain", 3)
    time.sleep(0.01)
    monkeypatch.setattr(SQLiteKV, "vacuum_once", lambda self: 0)
    with jexkv.open_kv(_url(path), vacuum_interval_ms=LONG) as kv:
        assert kv.get("old", "default") == "default"
        assert kv.exists("old") is False
        assert kv.ttl_ms("old") == -2
        assert sorted(kv.keys()) == ["live", "plain"]
        assert kv.get_many(["old", "live", "plain", "missing"]) == {
            "live": 2,
            "plain": 3,
        }
        assert kv.get("live") == 2
        assert kv.exists("live") is True
        assert 0 < kv.ttl_ms("live") <= 60_000
        assert kv.ttl_ms("plain") == -1
        assert _raw_keys(path) == {"old", "live", "plain"}
    assert _raw_keys(path) == {"old", "live", "plain"}


def test_vacuum_thread_deletes_expired_rows_on_its_own(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "vac.db"
    with jexkv.open_kv(_url(path), vacuum_interval_ms=50) as kv:
        kv.set("gone", 1, ttl_ms=1)
        kv.set("live", 2, ttl_ms=60_000)
        kv.set("plain", 3)
        assert wait_for(lambda: "gone" not in _raw_keys(path))
        assert _raw_keys(path) == {"live", "plain"}
        assert kv.get("live") == 2


@pytest.mark.parametrize("options", [{}, {"vacuum_batch": 7}], ids=["default", "batch7"])
def test_vacuum_once_deletes_every_expired_row_in_batches(
    tmp_path: pathlib.Path, options: dict[str, int]
) -> None:
    path = tmp_path / "batch.db"
    with jexkv.open_kv(_url(path), vacuum_interval_ms=LONG, **options) as kv:
        kv.set_many({f"e{i}": i for i in range(1_200)}, ttl_ms=1)
        kv.set("live", "yes", ttl_ms=60_000)
        kv.set("plain", "yes")
        assert len(_raw_keys(path)) == 1_202
        time.sleep(0.01)
        assert kv.vacuum_once() == 1_200
        assert _raw_keys(path) == {"live", "plain"}
        assert kv.vacuum_once() == 0
        assert kv.get("live") == "yes"


def test_close_stops_the_vacuum_thread(tmp_path: pathlib.Path) -> None:
    before = set(_vacuum_threads())
    kv = jexkv.open_kv(_url(tmp_path / "c.db"))  # default interval: a minute
    kv.set("k", 1)
    mine = [t for t in _vacuum_threads() if t not in before]
    assert len(mine) == 1
    kv.close()
    assert not mine[0].is_alive()
    assert mine[0] not in threading.enumerate()


# --- processes and fork ---------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import jexkv

    url, folder, index, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    kv = jexkv.open_kv(url)
    open(os.path.join(folder, "ready-" + index), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
        time.sleep(0.005)
    errors, values = [], []
    for _ in range(count):
        try:
            values.append(kv.incr("counter"))
        except Exception as exc:
            errors.append(repr(exc))
    kv.close()
    with open(os.path.join(folder, "result-" + index + ".json"), "w") as f:
        json.dump({"errors": errors, "values": values}, f)
    """
)


def test_incr_across_processes_is_atomic(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "db" / "shared.db"
    with jexkv.open_kv(_url(path)) as kv:
        kv.set("warm", 1)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, _url(path), str(tmp_path), str(i), "2000"],
            env=env,
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    try:
        assert wait_for(
            lambda: (
                all((tmp_path / f"ready-{i}").exists() for i in range(4))
                or any(p.poll() is not None for p in procs)
            ),
            timeout=60,
        )
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err.decode(errors="replace")
    values: list[int] = []
    for i in range(4):
        result = json.loads((tmp_path / f"result-{i}.json").read_text())
        assert result["errors"] == []
        assert len(result["values"]) == 2000
        values.extend(result["values"])
    assert sorted(values) == list(range(1, 8001))
    with jexkv.open_kv(_url(path)) as kv:
        assert kv.get("counter") == 8000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_store_survives_fork(tmp_path: pathlib.Path) -> None:
    kv = jexkv.open_kv(_url(tmp_path / "fork.db"), vacuum_interval_ms=50)
    kv.set("before", 1)
    assert kv.get("before") == 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 2  # an exception in the child ends it with code 2
        try:
            kv.set("child", 2)
            ok = kv.get("child") == 2 and kv.get("before") == 1 and kv.incr("n") == 1
            kv.close()
            code = 0 if ok else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("child process hung")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert kv.get("child") == 2
    assert kv.incr("n") == 2
    kv.set("after", 3)
    assert kv.get("after") == 3
    kv.close()


# --- locks ----------------------------------------------------------------------------------


def test_a_held_lock_is_waited_for(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lock.db"
    with jexkv.open_kv(_url(path), busy_timeout_ms=5_000, vacuum_interval_ms=LONG) as kv:
        kv.set("warm", 1)
        with hold_sqlite_write_lock(path, 0.3):
            assert kv.get("warm") == 1  # WAL: readers are not blocked by a writer
            assert kv.set("k", "v") is True
        assert kv.get("k") == "v"
    assert _raw_keys(path) == {"warm", "k"}


def test_a_lock_held_too_long_raises_backend_timeout(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lock.db"
    with jexkv.open_kv(_url(path), busy_timeout_ms=100, vacuum_interval_ms=LONG) as kv:
        kv.set("warm", 1)
        with hold_sqlite_write_lock(path, 1.0), pytest.raises(jexkv.BackendTimeout) as excinfo:
            kv.set("k", "v")
        assert isinstance(excinfo.value, jexkv.BackendError)
        assert isinstance(excinfo.value.__cause__, sqlite3.OperationalError)
        assert kv.get("k") is None
        assert kv.set("after", 1) is True
    assert _raw_keys(path) == {"warm", "after"}


def _hammer_until_closed(kv: jexkv.KVStore, ready: threading.Barrier, errors: list) -> None:
    ready.wait(timeout=10)
    try:
        while True:
            kv.set("k", kv.get("k") + 1)
    except jexkv.ClosedError:
        pass
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_close_while_other_threads_are_using_the_store(tmp_path: pathlib.Path) -> None:
    # Closing a sqlite3 connection that another thread is using can crash the process;
    # close() must leave those to their own threads, which then get ClosedError.
    for round_ in range(10):
        kv = jexkv.open_kv(f"sqlite:///{tmp_path}/busy{round_}.db")
        kv.set("k", 0)
        ready = threading.Barrier(5)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_hammer_until_closed, args=(kv, ready, errors))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        ready.wait(timeout=10)
        time.sleep(0.01)
        kv.close()
        for t in threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
