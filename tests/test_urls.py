"""open_kv URL handling: schemes, paths, shared memory stores, options and ConfigError."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import uuid

import pytest

import jexkv
from jexkv.memory.kv import MemoryKV
from jexkv.sqlite.kv import SQLiteKV


def _name() -> str:
    return "t" + uuid.uuid4().hex[:12]


def _raw_keys(path: pathlib.Path) -> set[str]:
    """The keys in the file, each as ``namespace:key`` (or ``key`` in the default namespace)."""
    con = sqlite3.connect(str(path))
    try:
        sql = "SELECT CASE ns WHEN '' THEN key ELSE ns || ':' || key END FROM kv"
        return {row[0] for row in con.execute(sql)}
    finally:
        con.close()


def test_memory_url_gives_a_private_store() -> None:
    with jexkv.open_kv("memory://") as a, jexkv.open_kv("memory://") as b:
        assert isinstance(a, MemoryKV)
        a.set("k", 1)
        assert a.get("k") == 1
        assert b.get("k") is None


def test_memory_name_is_shared_within_the_process() -> None:
    url = "memory://" + _name()
    with jexkv.open_kv(url) as a:
        with jexkv.open_kv(url) as b:
            with jexkv.open_kv(url + "x") as other:
                a.set("k", [1, 2])
                assert b.get("k") == [1, 2]
                b.delete("k")
                assert a.exists("k") is False
                b.set("j", "v")
                assert a.get("j") == "v"
                assert other.get("j") is None
                assert list(other.keys()) == []


def test_sqlite_relative_path_creates_file_and_folders(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with jexkv.open_kv("sqlite:///sub/dir/app.db") as kv:
        assert isinstance(kv, SQLiteKV)
        kv.set("k", "v")
        assert os.path.isabs(kv.path)
        assert os.path.samefile(kv.path, tmp_path / "sub" / "dir" / "app.db")
    assert (tmp_path / "sub" / "dir" / "app.db").is_file()
    assert _raw_keys(tmp_path / "sub" / "dir" / "app.db") == {"k"}


def test_sqlite_absolute_path_creates_file_and_folders(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a" / "b" / "app.db"
    url = "sqlite:///" + str(path)
    assert url.startswith("sqlite:////")
    with jexkv.open_kv(url) as kv:
        kv.set("k", {"x": 1})
    assert path.is_file()
    with jexkv.open_kv(url) as again:
        assert again.get("k") == {"x": 1}


def test_namespace_from_query_string() -> None:
    name = _name()
    with jexkv.open_kv(f"memory://{name}?namespace=app:") as app:
        with jexkv.open_kv(f"memory://{name}") as plain:
            app.set("k", 1)
            assert app.get("k") == 1
            assert plain.get("app:k") is None  # a namespace is not a prefix of the default's
            assert plain.get("k") is None
        with jexkv.open_kv(f"memory://{name}", namespace="app") as same:
            assert same.get("k") == 1  # "app:" and "app" are one namespace


def test_namespace_from_query_string_on_sqlite(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ns.db"
    with jexkv.open_kv(f"sqlite:///{path}?namespace=app:&vacuum_interval_ms=50") as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1
    assert _raw_keys(path) == {"app:k"}


def test_keyword_options_win_over_query_string() -> None:
    name = _name()
    with jexkv.open_kv(f"memory://{name}?namespace=q:", namespace="kw:") as kv:
        with jexkv.open_kv(f"memory://{name}", namespace="kw") as kw:
            with jexkv.open_kv(f"memory://{name}", namespace="q") as q:
                kv.set("k", 1)
                assert kw.get("k") == 1
                assert q.get("k") is None


def test_int_options_from_query_string_are_accepted(tmp_path: pathlib.Path) -> None:
    with jexkv.open_kv("memory://?purge_interval_ms=20") as kv:
        kv.set("k", 1, ttl_ms=1000)
        assert kv.get("k") == 1
    url = f"sqlite:///{tmp_path}/o.db?vacuum_interval_ms=50&busy_timeout_ms=100&vacuum_batch=7"
    with jexkv.open_kv(url) as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1


ERROR_CASES = [
    ("ftp://x", {}, "ftp"),
    ("no-scheme-here", {}, ""),
    ("memory://?bogus_opt=1", {}, "bogus_opt"),
    ("memory://", {"bogus_opt": 1}, "bogus_opt"),
    ("sqlite:///sub/app.db?bogus_opt=1", {}, "bogus_opt"),
    ("sqlite:///sub/app.db", {"bogus_opt": 1}, "bogus_opt"),
    ("sqlite:///sub/app.db?purge_interval_ms=20", {}, "purge_interval_ms"),
    ("sqlite:///sub/app.db", {"purge_interval_ms": 20}, "purge_interval_ms"),
    ("memory://?vacuum_interval_ms=50", {}, "vacuum_interval_ms"),
    ("memory://", {"busy_timeout_ms": 50}, "busy_timeout_ms"),
    ("sqlite:///sub/app.db?busy_timeout_ms=abc", {}, "busy_timeout_ms"),
    ("sqlite:///sub/app.db?vacuum_interval_ms=1.5", {}, "vacuum_interval_ms"),
    ("sqlite:///sub/app.db", {"vacuum_batch": "many"}, "vacuum_batch"),
    ("memory://?purge_interval_ms=fast", {}, "purge_interval_ms"),
    ("memory://", {"purge_interval_ms": "fast"}, "purge_interval_ms"),
    ("sqlite://", {}, "path"),
    ("sqlite:///", {}, "path"),
    ("redis://localhost:1/0?bogus_opt=1", {}, "bogus_opt"),
    ("redis://localhost:1/zero", {}, "database"),
    ("redis://localhost:1/0?socket_timeout_ms=-5", {}, "socket_timeout_ms"),
    ("redis://localhost:1/0", {"ssl_ca_file": "ca.pem"}, "rediss"),
    ("redis://localhost:1/0", {"purge_interval_ms": 5}, "purge_interval_ms"),
    ("unix://", {}, "path"),
    ("redis+cluster://h1:7000,h2:7001/3", {}, "only database 0"),
    ("redis+cluster://h1:7000,,h2:7001", {}, "empty host"),
    ("redis+sentinel://h1:26379,h2:26379", {}, "names no service"),
    ("redis+sentinel://h1:26379/mymaster/x", {}, "must be a number"),
]


@pytest.mark.parametrize(("url", "options", "fragment"), ERROR_CASES)
def test_config_errors_name_the_part_and_create_nothing(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    options: dict[str, object],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(jexkv.ConfigError) as excinfo:
        jexkv.open_kv(url, **options)
    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, jexkv.JexkvError)
    assert fragment.lower() in str(excinfo.value).lower()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url", ["redis://localhost:1/0", "rediss://u:pw@localhost:1/1", "unix:///tmp/r.sock?db=2"]
)
def test_redis_queue_urls_open_without_connecting(url: str) -> None:
    with jexkv.open_queue(url, prefix="app", lease_ms=5000) as q:
        assert "Redis" in repr(q)


def test_redis_queue_refuses_a_bad_prefix() -> None:
    with pytest.raises(jexkv.ConfigError, match="prefix"):
        jexkv.open_queue("redis://localhost:1/0", prefix="")


def test_redis_kv_urls_open_without_connecting_and_hide_the_password() -> None:
    kv = jexkv.open_kv("redis://user:s3cret-pw@localhost:1/3?socket_timeout_ms=200")
    try:
        assert "s3cret-pw" not in repr(kv)
        with pytest.raises(jexkv.BackendUnavailable) as excinfo:
            kv.get("k")  # nothing listens on port 1
        assert "s3cret-pw" not in str(excinfo.value)
    finally:
        kv.close()


def test_jexkv_url_environment_variable_is_used(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env" / "app.db"
    monkeypatch.setenv("JEXKV_URL", "sqlite:///" + str(path))
    with jexkv.open_kv() as kv:
        assert isinstance(kv, SQLiteKV)
        kv.set("k", 1)
    with jexkv.open_kv(None, namespace="ns:") as kv:
        kv.set("k", 2)
    assert _raw_keys(path) == {"k", "ns:k"}


def test_bad_jexkv_url_environment_variable_raises(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JEXKV_URL", "ftp://x")
    with pytest.raises(jexkv.ConfigError, match="ftp"):
        jexkv.open_kv()
    assert list(tmp_path.iterdir()) == []


def test_no_url_and_no_environment_means_memory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JEXKV_URL", raising=False)
    with jexkv.open_kv() as kv:
        assert isinstance(kv, MemoryKV)
        kv.set("k", 1)
        assert kv.get("k") == 1
    assert list(tmp_path.iterdir()) == []


# One JEXKV_URL for both halves: each half takes the query options it knows, checks the
# other half's and leaves them to it; an option neither half knows is still refused.
BOTH_HALVES = [
    "memory://?namespace=app:&keep_completed=100&lease_ms=5000&purge_interval_ms=50",
    "sqlite:///both.db?keep_completed=100&lease_ms=5000&vacuum_interval_ms=50&vacuum_batch=9",
    "redis://localhost:1/0?keep_completed=100&lease_ms=5000&prefix=app&socket_timeout_ms=900",
]


@pytest.mark.parametrize("url", BOTH_HALVES)
def test_one_url_serves_both_halves(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with jexkv.open_kv(url):
        pass
    with jexkv.open_queue(url):
        pass


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("memory://?keep_completed=-1", "keep_completed"),
        ("memory://?lease_ms=soon", "lease_ms"),
        ("sqlite:///x.db?lease_ms=1&lease_ms=2", "twice"),
        ("sqlite:///x.db?keep_completed=5&colour=red", "colour"),
        ("redis://localhost:1/0?prefix=app&bogus_opt=1", "bogus_opt"),
    ],
)
def test_the_other_halfs_options_are_still_checked(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, url: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(jexkv.ConfigError, match=fragment):
        jexkv.open_kv(url)
    assert list(tmp_path.iterdir()) == []


def test_the_other_halfs_options_are_refused_as_keywords() -> None:
    with pytest.raises(jexkv.ConfigError, match="lease_ms"):
        jexkv.open_kv("memory://", lease_ms=5000)
    with pytest.raises(jexkv.ConfigError, match="purge_interval_ms"):
        jexkv.open_queue("memory://", purge_interval_ms=5)


def test_sqlite_url_expands_the_home_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with jexkv.open_kv("sqlite:///~/sub/app.db") as kv:
        kv.set("k", 1)
    assert (tmp_path / "sub" / "app.db").is_file()
    assert not pathlib.Path("~").exists()


def test_sqlite_url_with_an_unknown_user_is_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(jexkv.ConfigError, match="cannot expand"):
        jexkv.open_kv("sqlite:///~no-such-user-jexkv/app.db")
    assert list(tmp_path.iterdir()) == []
