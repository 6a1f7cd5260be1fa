"""A SQLite file deleted or replaced while a store has it open: BackendUnavailable naming
the file, no write acknowledged and lost, no file created where the store's was, and never
a write into the file that took its place."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

import jexkv


def _other_database(path) -> None:
    con = sqlite3.connect(str(path))
    with con:
        con.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INT)")
        con.execute("INSERT INTO kv VALUES ('theirs', '1', NULL)")
    con.close()


def _in_a_new_thread(call):
    box: list = []

    def run() -> None:
        try:
            box.append(("ok", call()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(("raised", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return box[0]


@pytest.mark.parametrize("new_thread", [False, True], ids=["same thread", "new thread"])
def test_a_deleted_file_is_refused_not_recreated(tmp_path, new_thread):
    path = tmp_path / "kv.db"
    with jexkv.open_kv(f"sqlite:///{path}") as kv:
        kv.set("a", 1)
        os.unlink(path)
        if new_thread:
            outcome, error = _in_a_new_thread(lambda: kv.set("b", 2))
            assert outcome == "raised"
        else:
            with pytest.raises(jexkv.BackendUnavailable) as excinfo:
                kv.set("b", 2)
            error = excinfo.value
        assert isinstance(error, jexkv.BackendUnavailable)
        assert str(path) in str(error) and "deleted" in str(error)
        assert not path.exists(), "the store created a file it did not open"


def _rows(path) -> list:
    """The kv rows a reader of ``path`` sees, read in another process (as another program)."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " print(sorted(c.execute('SELECT key, value FROM kv').fetchall()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip())


def test_a_replaced_file_is_never_written(tmp_path):
    path = tmp_path / "kv.db"
    other = tmp_path / "other.db"
    _other_database(other)
    with jexkv.open_kv(f"sqlite:///{path}") as kv, jexkv.open_queue(f"sqlite:///{path}") as q:
        kv.set("a", 1)
        q.enqueue("q", "t")
        os.replace(other, path)
        # What a reader of the new file sees now. (SQLite applies the -wal left at the path
        # to whatever file is there: replace a database only with its -wal and -shm, or
        # with no store open; README. What jexkv owes is to add nothing to it.)
        before = _rows(path)
        with pytest.raises(jexkv.BackendUnavailable, match="replaced"):
            kv.set("a", 2)
        with pytest.raises(jexkv.BackendUnavailable, match="replaced"):
            kv.set_many({"x": 1, "y": 2})
        with pytest.raises(jexkv.BackendUnavailable, match="replaced"):
            q.enqueue("q", "t")
        outcome, error = _in_a_new_thread(lambda: kv.set("c", 3))
        assert outcome == "raised" and "replaced" in str(error)
    assert _rows(path) == before
    assert ("a", "2") not in before and ("x", "1") not in before


def test_the_file_opened_again_works(tmp_path):
    path = tmp_path / "kv.db"
    with jexkv.open_kv(f"sqlite:///{path}") as kv:
        kv.set("a", 1)
    os.unlink(path)
    with jexkv.open_kv(f"sqlite:///{path}") as kv:  # a new store creates it anew, 0600
        assert kv.get("a") is None
        kv.set("a", 2)
        assert kv.get("a") == 2
    assert oct(path.stat().st_mode & 0o777) == "0o600"
