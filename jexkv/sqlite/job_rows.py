"""The ``jobs`` table's statements, and its rows as Job snapshots.

Rule: every statement names the state it works on as a literal (``state =
'waiting'``), so SQLite uses that state's partial index (schema.py); a job's
public id is its custom id or, when it has none, its ``seq`` as a decimal string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jexkv.clock import now_ms
from jexkv.codec import decode
from jexkv.jobs import Backoff, Job, job_from

__all__ = [
    "CLAIM_RETURNING",
    "COLUMNS",
    "INSERT",
    "PAUSED",
    "PICK",
    "PROMOTE",
    "READINESS",
    "READY",
    "STALLED_ANY",
    "id_match",
    "row_to_job",
]

# Payloads and results are read as their UTF-8 bytes and decoded by codec.decode (in chunks
# when large): sqlite3's own decoding of a large non-ASCII text peaks at 6x its size.
COLUMNS = (
    "seq, custom_id, name, CAST(payload AS BLOB), state, priority, due_at, attempts,"
    " attempts_made, backoff, stall_count, error, traceback, CAST(result AS BLOB), created_at,"
    " processed_at, finished_at"
)
INSERT = (
    "INSERT OR IGNORE INTO jobs (queue, custom_id, name, payload, state, priority, due_at,"
    " attempts, backoff, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
READY = (
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE queue = ? AND state = 'waiting'),"
    " (SELECT min(due_at) FROM jobs WHERE queue = ? AND state = 'delayed'),"
    " EXISTS (SELECT 1 FROM queue_pauses WHERE queue = ?)"
)
PAUSED = "SELECT 1 FROM queue_pauses WHERE queue = ?"
# Whether any active job of a queue has a lease that ran out (a read, before any write).
STALLED_ANY = "SELECT 1 FROM jobs WHERE queue = ? AND state = 'active' AND lease_until <= ? LIMIT 1"
# For each queue named in {marks} ("(?),(?),…"): whether it has ready jobs and is not paused,
# and when its next delayed job is due (sqlite/watch.py).
READINESS = (
    "WITH q(name) AS (VALUES {marks}) SELECT name,"
    " EXISTS (SELECT 1 FROM jobs WHERE queue = q.name AND state = 'waiting')"
    " AND NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue = q.name),"
    " (SELECT min(due_at) FROM jobs WHERE queue = q.name AND state = 'delayed') FROM q"
)
PROMOTE = (
    "UPDATE jobs SET state = 'waiting' WHERE seq IN (SELECT seq FROM jobs"
    " WHERE queue = ? AND state = 'delayed' AND due_at <= ? ORDER BY due_at LIMIT ?)"
)
PICK = (
    "SELECT seq FROM jobs WHERE queue = ? AND state = 'waiting'"
    " ORDER BY priority, due_at, seq LIMIT ?"
)
CLAIM_RETURNING = (
    "UPDATE jobs SET state = 'active', lease_token = ?, lease_until = ?, processed_at = ?"
    f" WHERE seq IN ({PICK}) RETURNING {COLUMNS}"
)


def id_match(queue: str, job_id: str) -> tuple[str, tuple[Any, ...]]:
    """SQL condition and parameters for one job of ``queue`` by its public id."""
    if job_id.isdecimal() and job_id.isascii():  # a queue-chosen id (custom ids can't be)
        return "seq = ? AND queue = ?", (int(job_id), queue)
    return "queue = ? AND custom_id = ?", (queue, job_id)


def row_to_job(queue: str, row: Sequence[Any]) -> Job:
    """The Job snapshot of a row selected with COLUMNS."""
    (seq, custom_id, name, payload, state, priority, due_at, attempts, made, backoff,
     stalls, error, tb, result, created_at, processed_at, finished_at) = row  # fmt: skip
    if state == "delayed" and due_at <= now_ms():
        state = "waiting"  # due: the next fetch promotes it
    return job_from(
        custom_id or str(seq),
        queue,
        name,
        decode(payload),
        attempts,
        made,
        priority,
        created_at,
        state,
        error,
        None if result is None else decode(result),
        due_at,
        tb,
        stalls,
        Backoff.from_dict(None if backoff is None else decode(backoff)),
        processed_at,
        finished_at,
    )
