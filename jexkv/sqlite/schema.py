"""The tables jexkv keeps in a SQLite file, and the checks before touching one.

Rule: a file is only written to once it is known to be ours (or empty). Its
schema version lives in ``PRAGMA user_version``; every version's statements are
listed here once and applied in order inside one ``BEGIN IMMEDIATE``, so
processes opening a new file at the same moment create it exactly once. A file
that is not SQLite, that holds tables jexkv did not create, or that a newer
jexkv wrote is refused before any write, and left byte-for-byte as it was.
"""

from __future__ import annotations

import sqlite3

from jexkv.errors import BackendUnavailable

__all__ = ["SCHEMA_VERSION", "check", "migrate"]

# Statements that bring a file from version n-1 to version n.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # WITHOUT ROWID: the key is the only index, so a lookup is one B-tree search.
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER)"
        " WITHOUT ROWID",
        # Only keys with a TTL are indexed: the vacuum finds expired rows without a scan.
        "CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
    2: (
        # seq is the rowid: the enqueue order, and the job id when the caller gave none
        # (AUTOINCREMENT: an id is never handed out twice, even after its job is deleted).
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,"
        " custom_id TEXT, name TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL,"
        " priority INTEGER NOT NULL, due_at INTEGER NOT NULL, attempts INTEGER NOT NULL,"
        " attempts_made INTEGER NOT NULL DEFAULT 0, backoff TEXT, lease_token TEXT,"
        " lease_until INTEGER, stall_count INTEGER NOT NULL DEFAULT 0, error TEXT,"
        " traceback TEXT, result TEXT, created_at INTEGER NOT NULL, processed_at INTEGER,"
        " finished_at INTEGER)",
        "CREATE UNIQUE INDEX jobs_custom_id ON jobs (queue, custom_id) WHERE custom_id IS NOT NULL",
        # One partial index per state: each job sits in exactly one of them, and every
        # hot query (claim, promote, stalled check, listing, counts) is an index range.
        "CREATE INDEX jobs_waiting ON jobs (queue, priority, due_at) WHERE state = 'waiting'",
        "CREATE INDEX jobs_delayed ON jobs (queue, due_at) WHERE state = 'delayed'",
        "CREATE INDEX jobs_active ON jobs (queue, lease_until) WHERE state = 'active'",
        "CREATE INDEX jobs_finished ON jobs (queue, state, finished_at)"
        " WHERE state IN ('completed', 'dead')",
        # When the next stalled-job check of a queue is due, shared by all processes.
        "CREATE TABLE queue_checks (queue TEXT PRIMARY KEY, next_stall_check INTEGER NOT NULL)"
        " WITHOUT ROWID",
    ),
    3: (
        # The paused queues: no worker of any process claims their jobs.
        "CREATE TABLE queue_pauses (queue TEXT PRIMARY KEY) WITHOUT ROWID",
    ),
    4: (
        # Each key in its namespace, a column of its own: two namespaces never meet, and the
        # default one ("") is a namespace like the others, not the root of all of them. Rows
        # of earlier versions (their namespace was a raw prefix of the key) keep their full
        # key in the default namespace (README, "Namespaces").
        "CREATE TABLE kv_by_ns (ns TEXT NOT NULL DEFAULT '', key TEXT NOT NULL,"
        " value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (ns, key)) WITHOUT ROWID",
        "INSERT INTO kv_by_ns (ns, key, value, expires_at) SELECT '', key, value, expires_at"
        " FROM kv",
        "DROP TABLE kv",
        "ALTER TABLE kv_by_ns RENAME TO kv",
        "CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
    5: (
        # wait_for's marks: a job (by seq) watched by a waiter until a time; while marked, a
        # finished job is kept whatever the keep rules (jexkv/waiting.py).
        "CREATE TABLE job_waits (seq INTEGER NOT NULL, waiter TEXT NOT NULL,"
        " until INTEGER NOT NULL, PRIMARY KEY (seq, waiter)) WITHOUT ROWID",
    ),
    6: (
        # Schedules (jexkv/schedules.py): their settings as JSON, the tick whose job waits
        # now (NULL once ended) and how many jobs they made.
        "CREATE TABLE schedules (queue TEXT NOT NULL, id TEXT NOT NULL, spec TEXT NOT NULL,"
        " next_run_at INTEGER, runs INTEGER NOT NULL, PRIMARY KEY (queue, id)) WITHOUT ROWID",
    ),
    7: (
        # A job's own bound on one attempt (NULL: the worker's).
        "ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER",
    ),
}
SCHEMA_VERSION = max(_MIGRATIONS)

# The columns of each of our tables, from the version that gave it those columns on.
_TABLES: dict[str, tuple[tuple[int, tuple[str, ...]], ...]] = {
    "kv": ((1, ("key", "value", "expires_at")), (4, ("ns", "key", "value", "expires_at"))),
    "jobs": (
        (
            2,
            tuple(
                "seq queue custom_id name payload state priority due_at attempts attempts_made"
                " backoff lease_token lease_until stall_count error traceback result created_at"
                " processed_at finished_at".split()
            ),
        ),
        (
            7,
            tuple(
                "seq queue custom_id name payload state priority due_at attempts attempts_made"
                " backoff lease_token lease_until stall_count error traceback result created_at"
                " processed_at finished_at timeout_ms".split()
            ),
        ),
    ),
    "queue_checks": ((2, ("queue", "next_stall_check")),),
    "queue_pauses": ((3, ("queue",)),),
    "job_waits": ((5, ("seq", "waiter", "until")),),
    "schedules": ((6, ("queue", "id", "spec", "next_run_at", "runs")),),
}


def _expected(name: str, version: int) -> tuple[str, ...] | None:
    """The columns of table ``name`` at schema ``version`` (None: not there yet)."""
    columns = None
    for since, names in _TABLES[name]:
        if version >= since:
            columns = names
    return columns


def check(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version, after checking it is ours; reads only.

    Raises BackendUnavailable naming the file when it must be refused.
    """
    # One read transaction: the version and the tables are seen in one snapshot, so a file
    # another process is creating right now is never seen with its tables but version 0.
    snapshot = not conn.in_transaction
    try:
        if snapshot:
            conn.execute("BEGIN")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
            }
            columns = {
                name: tuple(row[1] for row in conn.execute(f"PRAGMA table_info({name})"))
                for name in tables & set(_TABLES)
            }
        finally:
            if snapshot and conn.in_transaction:
                conn.execute("COMMIT")
    except sqlite3.OperationalError:
        raise  # busy, locked, I/O: the caller's retry and error mapping (db.py) decide
    except sqlite3.DatabaseError as exc:
        raise BackendUnavailable(f"{path} is not a SQLite database ({exc}); refusing it") from exc
    if version > SCHEMA_VERSION:
        raise BackendUnavailable(
            f"{path} has jexkv schema version {version}, newer than this jexkv knows "
            f"({SCHEMA_VERSION}); upgrade jexkv to open it"
        )
    if version == 0 and tables:
        raise BackendUnavailable(
            f"{path} holds tables jexkv did not create ({', '.join(sorted(tables))}); "
            "refusing to write into it: give jexkv a file of its own"
        )
    for name in _TABLES:
        expected = _expected(name, version)
        if expected is not None and columns.get(name) != expected:
            raise BackendUnavailable(
                f"{path} says jexkv schema version {version}, but its table {name!r} does not "
                f"match (columns {columns.get(name)}, expected {expected}); refusing it"
            )
    return version


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file to SCHEMA_VERSION; ``conn`` is in autocommit mode."""
    if check(conn, path) == SCHEMA_VERSION:
        return
    # Settings that only take effect on an empty file come before the first table.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = check(conn, path)  # another process may have done it meanwhile
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
