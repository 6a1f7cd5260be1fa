"""The statements of the queue's tables (``jobs``, ``queue_checks``, ``queue_pauses``), and
the ``jobs`` rows as Job snapshots.

Rule: every statement of the SQLite queue is here, and names the state it works on as a
literal where it can (``state = 'waiting'``), so SQLite uses that state's partial index
(schema.py); a job's public id is its custom id or, when it has none, its ``seq`` as a
decimal string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jexkv.clock import now_ms
from jexkv.codec import decode
from jexkv.jobs import Backoff, Job, job_from

__all__ = [
    "CLAIM_PICKED",
    "ADVANCE_SCHEDULE",
    "CLAIM_RETURNING",
    "COLUMNS",
    "COMPLETE",
    "COUNTS",
    "FINISHED",
    "DELETE_HELD",
    "DELETE_PENDING",
    "DELETE_SCHEDULE",
    "EXTEND",
    "FAIL",
    "HELD",
    "INSERT",
    "LIST_DELAYED",
    "LIST_ORDER",
    "LIST_SCHEDULES",
    "LIST_STATE",
    "LIST_WAITING",
    "MARK_WAIT",
    "NEXT_CHECK",
    "PAUSE",
    "PAUSED",
    "PICK",
    "PROMOTE",
    "PURGE_DEAD",
    "READINESS",
    "READY",
    "RECOVER",
    "RELEASE",
    "RENEW_WAIT",
    "RESUME",
    "RETRY_DEAD",
    "SELECT_ONE",
    "SELECT_SCHEDULE",
    "SELECT_SEQ",
    "SELECT_SEQS",
    "SET_NEXT_CHECK",
    "STALLED",
    "STALLED_ANY",
    "TRIM",
    "UNMARK_WAIT",
    "UPSERT_SCHEDULE",
    "id_match",
    "row_to_job",
]

# Payloads and results are read as their UTF-8 bytes and decoded by codec.decode (in chunks
# when large): sqlite3's own decoding of a large non-ASCII text peaks at 6x its size.
COLUMNS = (
    "seq, custom_id, name, CAST(payload AS BLOB), state, priority, due_at, attempts,"
    " attempts_made, backoff, stall_count, error, traceback, CAST(result AS BLOB), created_at,"
    " processed_at, finished_at, timeout_ms"
)
INSERT = (
    "INSERT OR IGNORE INTO jobs (queue, custom_id, name, payload, state, priority, due_at,"
    " attempts, backoff, created_at, timeout_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
# Without RETURNING (SQLite < 3.35): the picked rows ({marks}: one ? per seq) are claimed,
# then read.
CLAIM_PICKED = (
    "UPDATE jobs SET state = 'active', lease_token = ?, lease_until = ?, processed_at = ?"
    " WHERE seq IN ({marks})"
)
SELECT_SEQS = f"SELECT {COLUMNS} FROM jobs WHERE seq IN ({{marks}})"

# Statements on one job: {one} is id_match's condition, {held} HELD's (the job still held
# under the lease token given last).
HELD = "{one} AND state = 'active' AND lease_token = ?"
SELECT_ONE = f"SELECT {COLUMNS} FROM jobs WHERE {{one}}"
# The jobs a waiter watches now (the last parameter: now): kept when they finish.
_WATCHED = "SELECT seq FROM job_waits WHERE until > ?"
DELETE_HELD = f"DELETE FROM jobs WHERE {{held}} AND seq NOT IN ({_WATCHED})"
COMPLETE = (
    "UPDATE jobs SET state = 'completed', result = ?, finished_at = ?,"
    " attempts_made = attempts_made + 1, lease_token = NULL WHERE {held}"
)
RELEASE = "UPDATE jobs SET state = 'waiting', lease_token = NULL, processed_at = NULL WHERE {held}"
FAIL = (
    "UPDATE jobs SET state = ?, due_at = coalesce(?, due_at), finished_at = ?, error = ?,"
    " traceback = ?, attempts_made = attempts_made + 1, lease_token = NULL WHERE {held}"
)
EXTEND = "UPDATE jobs SET lease_until = ? WHERE {held}"
RETRY_DEAD = (
    "UPDATE jobs SET state = 'waiting', due_at = ?, attempts_made = 0, stall_count = 0,"
    " error = NULL, traceback = NULL, processed_at = NULL, finished_at = NULL"
    " WHERE {one} AND state = 'dead'"
)
# SQLite uses a partial index only for a query whose WHERE holds the index's own condition
# as written: ``state = 'completed'`` alone does not let it use jobs_finished (it scans the
# whole table and sorts). Every query on finished jobs adds this term (tests/sqlite's query
# plan test checks them).
FINISHED = "state IN ('completed', 'dead')"
# The newest ``keep`` (the last parameter) finished jobs of a state stay, and those watched
# (now: the third); older ones go.
TRIM = (
    f"DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = ? AND"
    f" {FINISHED} AND seq NOT IN ({_WATCHED}) ORDER BY finished_at DESC, seq DESC"
    " LIMIT -1 OFFSET ?)"
)
# wait_for's marks: set or renew one (seq, waiter, until), drop one, and the ends of those
# that ran out (a waiter that died).
MARK_WAIT = "INSERT OR REPLACE INTO job_waits (seq, waiter, until) VALUES (?, ?, ?)"
RENEW_WAIT = (
    "UPDATE job_waits SET until = ? WHERE waiter = ? AND seq = (SELECT seq FROM jobs WHERE {one})"
)
UNMARK_WAIT = "DELETE FROM job_waits WHERE waiter = ? OR until <= ?"
SELECT_SEQ = "SELECT seq FROM jobs WHERE {one}"

# Schedules (jexkv/schedules.py). ADVANCE_SCHEDULE moves a schedule on only from the tick
# it names (the last parameter): of two claims of that tick's job, one makes the next.
UPSERT_SCHEDULE = (
    "INSERT OR REPLACE INTO schedules (queue, id, spec, next_run_at, runs) VALUES (?, ?, ?, ?, ?)"
)
SELECT_SCHEDULE = "SELECT spec, next_run_at, runs FROM schedules WHERE queue = ? AND id = ?"
LIST_SCHEDULES = "SELECT spec, next_run_at, runs FROM schedules WHERE queue = ? ORDER BY id"
DELETE_SCHEDULE = "DELETE FROM schedules WHERE queue = ? AND id = ?"
ADVANCE_SCHEDULE = (
    "UPDATE schedules SET next_run_at = ?, runs = ? WHERE queue = ? AND id = ? AND next_run_at = ?"
)
# A schedule's job for a tick, unless it has started (a replaced or removed schedule's).
DELETE_PENDING = (
    "DELETE FROM jobs WHERE queue = ? AND custom_id = ? AND state IN ('waiting', 'delayed')"
)
PURGE_DEAD = "DELETE FROM jobs WHERE queue = ? AND state = 'dead'"

# The stalled check: its throttle across processes, the jobs whose lease ran out, and one
# job recovered (back to waiting, or dead with an error).
NEXT_CHECK = "SELECT next_stall_check FROM queue_checks WHERE queue = ?"
SET_NEXT_CHECK = "INSERT OR REPLACE INTO queue_checks (queue, next_stall_check) VALUES (?, ?)"
STALLED = (
    "SELECT seq, stall_count FROM jobs WHERE queue = ? AND state = 'active' AND lease_until <= ?"
)
RECOVER = (
    "UPDATE jobs SET state = ?, stall_count = ?, attempts_made = attempts_made + 1,"
    " finished_at = ?, error = coalesce(?, error), traceback = CASE WHEN ? IS NULL THEN"
    " traceback END, lease_token = NULL WHERE seq = ?"
)

# Every state's count of a queue (a due delayed job counts as waiting): parameters
# (queue, queue, now, queue, now, queue, queue, queue).
_COUNT = "(SELECT count(*) FROM jobs WHERE queue = ? AND state = '{}'{})"
COUNTS = "SELECT " + ", ".join(
    _COUNT.format(state, extra)
    for state, extra in (
        ("waiting", ""),
        ("delayed", " AND due_at <= ?"),
        ("delayed", " AND due_at > ?"),
        ("active", ""),
        ("completed", f" AND {FINISHED}"),
        ("dead", f" AND {FINISHED}"),
    )
)

# Listing one state, in TaskQueue.jobs's order: waiting (with due delayed jobs) in run
# order, delayed by due time; {order} for the others (LIST_ORDER).
LIST_WAITING = (
    f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = 'waiting' UNION ALL"
    f" SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = 'delayed' AND due_at <= ?"
    " ORDER BY priority, due_at, seq LIMIT ?"
)
LIST_DELAYED = (
    f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = 'delayed' AND due_at > ?"
    " ORDER BY due_at, seq LIMIT ?"
)
LIST_STATE = (
    f"SELECT {COLUMNS} FROM jobs WHERE queue = ? AND state = ?{{finished}} ORDER BY {{order}}"
    " LIMIT ?"
)
LIST_ORDER = {
    "active": "processed_at, seq",
    "completed": "finished_at DESC, seq DESC",
    "dead": "finished_at DESC, seq DESC",
}

PAUSE = "INSERT OR IGNORE INTO queue_pauses (queue) VALUES (?)"
RESUME = "DELETE FROM queue_pauses WHERE queue = ?"


def id_match(queue: str, job_id: str) -> tuple[str, tuple[Any, ...]]:
    """SQL condition and parameters for one job of ``queue`` by its public id."""
    if job_id.isdecimal() and job_id.isascii():  # a queue-chosen id (custom ids can't be)
        return "seq = ? AND queue = ?", (int(job_id), queue)
    return "queue = ? AND custom_id = ?", (queue, job_id)


def row_to_job(queue: str, row: Sequence[Any]) -> Job:
    """The Job snapshot of a row selected with COLUMNS."""
    (seq, custom_id, name, payload, state, priority, due_at, attempts, made, backoff,
     stalls, error, tb, result, created_at, processed_at, finished_at, timeout) = row  # fmt: skip
    if state == "delayed" and due_at <= now_ms():
        state = "waiting"  # due: the next fetch promotes it
    return job_from(
        {
            "id": custom_id or str(seq),
            "queue": queue,
            "name": name,
            "payload": decode(payload),
            "attempts": attempts,
            "attempts_made": made,
            "priority": priority,
            "created_at_ms": created_at,
            "state": state,
            "error": error,
            "result": None if result is None else decode(result),
            "due_at_ms": due_at,
            "traceback": tb,
            "stall_count": stalls,
            "backoff": Backoff.from_dict(None if backoff is None else decode(backoff)),
            "processed_at_ms": processed_at,
            "finished_at_ms": finished_at,
            "timeout_ms": timeout,
        }
    )
