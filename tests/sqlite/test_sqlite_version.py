"""The SQLite library's version: one too old is refused at open (nothing created), and the
claim without ``UPDATE … RETURNING`` (SQLite before 3.35, as on Debian 11) gives the same jobs."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest

import jexkv
from jexkv.sqlite import version


@pytest.mark.parametrize("kind", ["kv", "queue"])
def test_an_old_sqlite_is_refused_at_open_and_nothing_is_created(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 15, 0))
    path = tmp_path / "new" / "jexkv.db"
    opener = jexkv.open_kv if kind == "kv" else jexkv.open_queue
    with pytest.raises(jexkv.ConfigError, match=r"SQLite 3\.24\.0 or newer") as caught:
        opener(f"sqlite:///{path}")
    assert "SQLite 3.15.0" in str(caught.value)
    assert str(path) in str(caught.value)
    assert not path.parent.exists()


def test_the_oldest_sqlite_allowed_opens_and_claims_without_returning(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version.MINIMUM)
    assert not version.has_returning()
    with jexkv.open_kv(f"sqlite:///{tmp_path / 'kv.db'}") as kv:
        assert kv.set("k", 1, nx=True)
        assert not kv.set("k", 2, nx=True)
        assert kv.get("k") == 1


def _claims(tmp_path: pathlib.Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Claim three jobs of four in one fetch; the jobs claimed, and the statements run."""
    queue = jexkv.open_queue(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        for name, priority in (("low", 5), ("first", 0), ("second", 0), ("mid", 1)):
            queue.enqueue("q", name, priority=priority)
        backend = queue._backend
        statements: list[str] = []
        backend._db.trace(statements.append)
        claims = backend.fetch("q", 30_000, 3)
        backend._db.trace(None)
        assert queue.counts("q")["active"] == 3
        return [(job.name, job.state) for job, _ in claims], statements
    finally:
        queue.close()


def test_the_claim_without_returning_takes_the_same_jobs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = [("first", "active"), ("second", "active"), ("mid", "active")]
    monkeypatch.delenv("JEXKV_SQLITE_NO_RETURNING", raising=False)
    if version.has_returning():  # SQLite 3.35+: both paths are compared
        claimed, statements = _claims(tmp_path / "returning")
        assert claimed == expected
        assert any("RETURNING" in s for s in statements)
    monkeypatch.setenv("JEXKV_SQLITE_NO_RETURNING", "1")
    assert not version.has_returning()
    claimed, statements = _claims(tmp_path / "fallback")
    assert claimed == expected
    assert statements and not any("RETURNING" in s for s in statements)
