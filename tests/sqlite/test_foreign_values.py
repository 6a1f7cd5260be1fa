"""A value that another program wrote into the SQLite file and that is not JSON text
raises SerializationError naming the key; ``pop`` leaves it in place."""

from __future__ import annotations

import sqlite3

import pytest

import jexkv


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "kv.db"
    with jexkv.open_kv(f"sqlite:///{path}") as kv:
        kv.set("fine", 1)
    con = sqlite3.connect(str(path))
    with con:
        con.execute("INSERT INTO kv (key, value) VALUES ('foreign', '<not json>')")
    con.close()
    return path


def test_reads_name_the_key(path):
    with jexkv.open_kv(f"sqlite:///{path}") as kv:
        for read in (kv.get, kv.pop, lambda key: kv.get_many([key, "fine"])):
            with pytest.raises(jexkv.SerializationError, match="'foreign'"):
                read("foreign")
        with pytest.raises(jexkv.SerializationError, match="'foreign'"):
            kv.incr("foreign")
        assert kv.get("fine") == 1
        assert sorted(kv.keys()) == ["fine", "foreign"]  # pop kept it


def test_pop_keeps_the_value(path):
    with jexkv.open_kv(f"sqlite:///{path}") as kv:
        with pytest.raises(jexkv.SerializationError):
            kv.pop("foreign")
    con = sqlite3.connect(str(path))
    try:
        assert con.execute("SELECT value FROM kv WHERE key = 'foreign'").fetchone() == (
            "<not json>",
        )
    finally:
        con.close()
