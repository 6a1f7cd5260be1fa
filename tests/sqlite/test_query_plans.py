"""The SQLite queue's statements on finished jobs use the jobs_finished index: no scan of the
whole jobs table and no sort (counts, listing and trimming stay cheap with a million kept
jobs). SQLite uses a partial index only when the WHERE holds its condition as written."""

from __future__ import annotations

import sqlite3

import pytest

from jexkv.sqlite import job_rows as rows
from jexkv.sqlite import schema


@pytest.fixture
def conn() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:", isolation_level=None)
    for version in sorted(schema._MIGRATIONS):
        for statement in schema._MIGRATIONS[version]:
            con.execute(statement)
    return con


def plan(conn: sqlite3.Connection, sql: str, params: tuple) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def test_counts_never_scan_the_jobs_table(conn: sqlite3.Connection) -> None:
    steps = plan(conn, rows.COUNTS, ("q", "q", 0, "q", 0, "q", "q", "q"))
    assert not [s for s in steps if s.startswith("SCAN jobs")], steps
    assert sum("jobs_finished" in s for s in steps) == 2, steps


@pytest.mark.parametrize("state", ["completed", "dead"])
def test_listing_finished_jobs_reads_the_index_in_order(
    conn: sqlite3.Connection, state: str
) -> None:
    sql = rows.LIST_STATE.format(order=rows.LIST_ORDER[state], finished=f" AND {rows.FINISHED}")
    steps = plan(conn, sql, ("q", state, 10))
    assert any("jobs_finished" in s for s in steps), steps
    assert not [s for s in steps if s.startswith("SCAN jobs") or "TEMP B-TREE" in s], steps


@pytest.mark.parametrize("state", ["completed", "dead"])
def test_trimming_reads_the_index_in_order(conn: sqlite3.Connection, state: str) -> None:
    steps = plan(conn, rows.TRIM, ("q", state, 0, 100))
    assert any("jobs_finished" in s for s in steps), steps
    assert not [s for s in steps if s.startswith("SCAN jobs") or "TEMP B-TREE" in s], steps
