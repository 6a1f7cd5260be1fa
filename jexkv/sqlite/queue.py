"""SQLiteQueueBackend: the queue steps over the ``jobs`` table of one SQLite file.

Rules:
* Every step that moves a job is one autocommit statement or one
  ``BEGIN IMMEDIATE`` transaction, so it is atomic across processes; steps that
  finish a job check its lease token, so a worker that lost its lease (the job
  was handed to another after a stall) cannot finish it twice.
* An idle worker does not poll the table: it waits on its queue's wake-ups
  (jexkv/wakeups.py), which this process's own steps bump, and which the store's one
  CommitWatch thread (sqlite/watch.py) bumps when another process commits work for that
  queue. It looks at the table again only then, or when its next delayed job is due.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from jexkv.clock import due_ms, now_ms, steady_ms
from jexkv.codec import encode
from jexkv.contracts import Claim
from jexkv.jobs import STATES, Job, NewJob, added_job, is_job_id, stalled_error
from jexkv.namespaces import check_namespace, qualify
from jexkv.schedules import (
    Schedule,
    ScheduleSpec,
    first_tick,
    next_tick,
    spec_from_json,
    spec_to_json,
    tick_job,
    tick_job_id,
    tick_of,
)
from jexkv.sqlite import job_rows as rows
from jexkv.sqlite.db import Database
from jexkv.sqlite.version import has_returning
from jexkv.sqlite.watch import CommitWatch
from jexkv.taskqueue import JobQueue
from jexkv.waiting import wait_local
from jexkv.wakeups import Wakeups

__all__ = ["SQLiteQueueBackend", "open_sqlite_queue"]

_PROMOTE_BATCH = 1000  # delayed jobs made ready per fetch, at most


class SQLiteQueueBackend:
    def __init__(self, db: Database, namespace: str = "") -> None:
        self._db = db
        self.path = db.path
        self._ns = check_namespace(namespace)
        self._wakeups = Wakeups()
        self._finishes = Wakeups()  # wait_for's: jobs finished (jexkv/waiting.py)
        self._watch = CommitWatch(db, self._wakeups, self._finishes)

    def _trim(
        self, conn: sqlite3.Connection, full: str, state: str, keep: int | None, now: int
    ) -> None:
        if keep is not None:
            conn.execute(rows.TRIM, (full, state, now, keep))

    # -- adding and fetching -----------------------------------------------------------

    def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
        full = qualify(self._ns, queue)

        def insert(conn: sqlite3.Connection) -> list[Job]:
            now = now_ms()
            return [self._insert(conn, queue, full, new, now) for new in jobs]

        added = self._db.transaction(insert)
        self._wakeups.bump(full)
        return added

    def _insert(
        self, conn: sqlite3.Connection, queue: str, full: str, new: NewJob, now: int
    ) -> Job:
        """Add one job inside the caller's transaction (one with a kept id adds nothing)."""
        due = due_ms(new.delay_ms) if new.delay_ms else now
        backoff = None if new.backoff is None else encode(new.backoff)
        state = "delayed" if new.delay_ms else "waiting"
        cur = conn.execute(
            rows.INSERT,
            (full, new.job_id, new.name, new.payload, state,
             new.priority, due, new.attempts, backoff, now, new.timeout_ms),
        )  # fmt: skip
        seq = cur.lastrowid
        if cur.rowcount and seq is not None:  # built from what was written
            return added_job(queue, new, new.job_id or str(seq), state, due, now)
        # The custom id is kept already: return that job, as it is.
        one, params = rows.id_match(full, new.job_id or "")
        row = conn.execute(rows.SELECT_ONE.format(one=one), params).fetchone()
        return rows.row_to_job(queue, row)

    def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        full = qualify(self._ns, queue)
        now = now_ms()
        ((waiting, next_due, paused),) = self._db.read(rows.READY, (full, full, full))
        if paused:
            self._wakeups.found_nothing(full, None)  # wait for a wake-up (the resume)
            return []
        if not waiting and (next_due is None or next_due > now):
            self._wakeups.found_nothing(full, next_due)
            return []

        def claim(conn: sqlite3.Connection) -> list[tuple[str, Any]]:
            return self._claim(conn, full, lease_ms, limit, promote=next_due is not None)

        return [(rows.row_to_job(queue, row), token) for token, row in self._db.transaction(claim)]

    def _claim(
        self, conn: sqlite3.Connection, full: str, lease_ms: int, limit: int, promote: bool
    ) -> list[tuple[str, Any]]:
        """Claim up to ``limit`` ready jobs inside the caller's write transaction."""
        now = now_ms()
        if conn.execute(rows.PAUSED, (full,)).fetchone() is not None:
            return []
        if promote:
            conn.execute(rows.PROMOTE, (full, now, _PROMOTE_BATCH))
        token = uuid.uuid4().hex
        if has_returning():  # UPDATE … RETURNING (SQLite 3.35+): one statement
            # A RETURNING statement ends only when read to the end.
            claimed = conn.execute(
                rows.CLAIM_RETURNING, (token, now + lease_ms, now, full, limit)
            ).fetchall()
        else:
            seqs = [row[0] for row in conn.execute(rows.PICK, (full, limit))]
            if not seqs:
                return []
            marks = ",".join("?" * len(seqs))
            conn.execute(rows.CLAIM_PICKED.format(marks=marks), (token, now + lease_ms, now, *seqs))
            claimed = conn.execute(rows.SELECT_SEQS.format(marks=marks), seqs).fetchall()
        claimed.sort(key=lambda row: (row[5], row[6], row[0]))  # priority, due, seq
        for row in claimed:
            if row[1] is not None and row[1].startswith("repeat:"):  # a schedule's job
                self._next_tick(conn, full, row[1], now)
        return [(token, row) for row in claimed]

    # -- schedules (jexkv/schedules.py) ------------------------------------------------

    def _next_tick(self, conn: sqlite3.Connection, full: str, job_id: str, now: int) -> None:
        """A schedule's job was claimed: if it is its current tick's, make the next one in
        the same transaction (ADVANCE_SCHEDULE lets one claim of a tick do it)."""
        found = tick_of(job_id)
        if found is None:
            return
        current = conn.execute(rows.SELECT_SCHEDULE, (full, found[0])).fetchone()
        if current is None or current[1] != found[1]:
            return  # not a schedule's (any more), or not its current tick: nothing more
        spec, runs = spec_from_json(current[0]), current[2]
        following = next_tick(spec, found[1], now, runs)
        advanced = conn.execute(
            rows.ADVANCE_SCHEDULE,
            (following, runs + (following is not None), full, spec.id, found[1]),
        ).rowcount
        if advanced and following is not None:
            self._insert(conn, "", full, tick_job(spec, following, now), now)

    def schedule(self, queue: str, spec: ScheduleSpec) -> Schedule:
        full = qualify(self._ns, queue)

        def store(conn: sqlite3.Connection) -> tuple[int | None, int]:
            now = now_ms()
            self._drop_pending(conn, full, spec.id)
            tick = first_tick(spec, now)
            runs = 0 if tick is None else 1
            conn.execute(rows.UPSERT_SCHEDULE, (full, spec.id, spec_to_json(spec), tick, runs))
            if tick is not None:
                self._insert(conn, queue, full, tick_job(spec, tick, now), now)
            return tick, runs

        tick, runs = self._db.transaction(store)
        self._wakeups.bump(full)
        return spec.schedule(queue, tick, runs)

    def _drop_pending(self, conn: sqlite3.Connection, full: str, schedule_id: str) -> bool:
        """Delete the schedule's job for its next tick unless it started; False if there
        is no such schedule."""
        found = conn.execute(rows.SELECT_SCHEDULE, (full, schedule_id)).fetchone()
        if found is None:
            return False
        if found[1] is not None:
            conn.execute(rows.DELETE_PENDING, (full, tick_job_id(schedule_id, found[1])))
        return True

    def schedules(self, queue: str) -> list[Schedule]:
        found = self._db.read(rows.LIST_SCHEDULES, (qualify(self._ns, queue),))
        return [spec_from_json(spec).schedule(queue, tick, runs) for spec, tick, runs in found]

    def unschedule(self, queue: str, schedule_id: str) -> bool:
        full = qualify(self._ns, queue)

        def remove(conn: sqlite3.Connection) -> bool:
            if not self._drop_pending(conn, full, schedule_id):
                return False
            conn.execute(rows.DELETE_SCHEDULE, (full, schedule_id))
            return True

        return self._db.transaction(remove)

    def seen(self, queue: str) -> int:
        return self._wakeups.seen(qualify(self._ns, queue))

    def wait(self, queue: str, seen: int, timeout_s: float, stop: threading.Event) -> None:
        full = qualify(self._ns, queue)
        self._watch.watch(full)
        self._wakeups.wait(full, seen, timeout_s, stop, now_ms())

    async def wait_async(self, queue: str, seen: int, timeout_s: float) -> None:
        full = qualify(self._ns, queue)
        self._watch.watch(full)
        await self._wakeups.wait_async(full, seen, timeout_s, now_ms())

    def notify(self, queue: str) -> None:
        self._wakeups.bump(qualify(self._ns, queue))

    # -- finishing -------------------------------------------------------------------

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        full = qualify(self._ns, queue)

        def finish(conn: sqlite3.Connection) -> tuple[list[str], list[tuple[str, Any]]]:
            now = now_ms()
            lost = []
            for job_id, token, result in done:
                one, params = rows.id_match(full, job_id)
                held = rows.HELD.format(one=one)
                if (
                    keep == 0
                    and conn.execute(
                        rows.DELETE_HELD.format(held=held), (*params, token, now)
                    ).rowcount
                ):
                    continue  # done, and kept by no one (else: a waiter watches it)
                complete = rows.COMPLETE.format(held=held)
                if not conn.execute(complete, (result, now, *params, token)).rowcount:
                    lost.append(job_id)
            if keep and len(lost) < len(done):
                self._trim(conn, full, "completed", keep, now)
            claimed = self._claim(conn, full, next_lease_ms, next_limit, True) if next_limit else []
            return lost, claimed

        lost, claimed = self._db.transaction(finish)
        if len(lost) < len(done):
            self._finishes.bump(full)
        return lost, [(rows.row_to_job(queue, row), token) for token, row in claimed]

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        full = qualify(self._ns, queue)

        def hand_back(conn: sqlite3.Connection) -> None:
            for job_id, token in held:
                one, params = rows.id_match(full, job_id)
                conn.execute(rows.RELEASE.format(held=rows.HELD.format(one=one)), (*params, token))

        if held:
            self._db.transaction(hand_back)
            self._wakeups.bump(full)

    def fail(
        self,
        queue: str,
        job_id: str,
        token: str,
        error: str,
        traceback: str,
        retry_delay_ms: int | None,
        keep_dead: int | None,
    ) -> bool:
        full = qualify(self._ns, queue)
        one, params = rows.id_match(full, job_id)
        fail = rows.FAIL.format(held=rows.HELD.format(one=one))

        def record(conn: sqlite3.Connection) -> bool:
            now = now_ms()
            if retry_delay_ms is None:
                state, due, finished = "dead", None, now
            else:
                due, finished = due_ms(retry_delay_ms), None
                state = "delayed" if due > now else "waiting"
            done = conn.execute(
                fail, (state, due, finished, error, traceback, *params, token)
            ).rowcount
            if done and state == "dead":
                self._trim(conn, full, "dead", keep_dead, now)
            return done > 0

        done = self._db.transaction(record)
        if done and retry_delay_ms is not None:
            self._wakeups.bump(full)
        elif done:
            self._finishes.bump(full)
        return done

    def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        full = qualify(self._ns, queue)

        def renew(conn: sqlite3.Connection) -> list[str]:
            until = now_ms() + lease_ms
            lost = []
            for job_id, token in held:
                one, params = rows.id_match(full, job_id)
                extend = rows.EXTEND.format(held=rows.HELD.format(one=one))
                if not conn.execute(extend, (until, *params, token)).rowcount:
                    lost.append(job_id)
            return lost

        return self._db.transaction(renew)

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        full = qualify(self._ns, queue)
        if not self._db.read(rows.STALLED_ANY, (full, now_ms())):
            return 0  # nothing to recover: no write (a thousand idle queues make no commits)

        def recover(conn: sqlite3.Connection) -> int:
            now = now_ms()
            row = conn.execute(rows.NEXT_CHECK, (full,)).fetchone()
            # Another worker (maybe in another process) checked recently. A next check
            # further ahead than one interval was set by a clock that has since stepped
            # back: stale, so a dead worker's jobs are not left for the size of the step.
            if row is not None and now < row[0] <= now + interval_ms:
                return 0
            conn.execute(rows.SET_NEXT_CHECK, (full, now + interval_ms))
            stalled = conn.execute(rows.STALLED, (full, now)).fetchall()
            dead = False
            for seq, stalls in stalled:
                stalls += 1
                if stalls > max_stalls:
                    dead = True
                    state, finished, error = "dead", now, stalled_error(stalls, max_stalls)
                else:
                    state, finished, error = "waiting", None, None
                conn.execute(rows.RECOVER, (state, stalls, finished, error, error, seq))
            if dead:
                self._trim(conn, full, "dead", keep_dead, now)
            return len(stalled)

        recovered = self._db.transaction(recover)
        if recovered:
            self._wakeups.bump(full)
            self._finishes.bump(full)
        return recovered

    # -- wait_for's steps (jexkv/waiting.py) -------------------------------------------

    def watch_start(self, queue: str, job_id: str, waiter: str, until: int) -> Job | None:
        if not is_job_id(job_id):
            return None
        full = qualify(self._ns, queue)
        one, params = rows.id_match(full, job_id)

        def mark(conn: sqlite3.Connection) -> Any:
            found = conn.execute(rows.SELECT_ONE.format(one=one), params).fetchone()
            if found is not None:
                conn.execute(rows.MARK_WAIT, (found[0], waiter, until))
            return found

        self._watch.watch(full)  # other processes' commits wake this queue's waiters
        found = self._db.transaction(mark)
        return None if found is None else rows.row_to_job(queue, found)

    def watch_check(
        self, queue: str, job_id: str, waiter: str, renew_until: int | None
    ) -> Job | None:
        if renew_until is not None:
            one, params = rows.id_match(qualify(self._ns, queue), job_id)
            self._db.write(rows.RENEW_WAIT.format(one=one), (renew_until, waiter, *params))
        return self.get(queue, job_id)

    def watch_stop(
        self, queue: str, job_id: str, waiter: str, keep: int, keep_dead: int | None
    ) -> None:
        full = qualify(self._ns, queue)

        def unmark(conn: sqlite3.Connection) -> None:
            now = now_ms()
            if conn.execute(rows.UNMARK_WAIT, (waiter, now)).rowcount:
                # The keep rules again, for the job this waiter kept (if no other keeps it).
                self._trim(conn, full, "completed", keep, now)
                self._trim(conn, full, "dead", keep_dead, now)

        if is_job_id(job_id):
            self._db.transaction(unmark)

    def finish_seen(self, queue: str) -> int:
        return self._finishes.seen(qualify(self._ns, queue))

    def finish_wait(self, queue: str, seen: int, timeout_s: float) -> None:
        full = qualify(self._ns, queue)
        self._finishes.wait(full, seen, timeout_s, threading.Event(), steady_ms())

    async def finish_wait_async(self, queue: str, seen: int, timeout_s: float) -> None:
        await self._finishes.wait_async(qualify(self._ns, queue), seen, timeout_s, steady_ms())

    def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        return wait_local(self, queue, job_id, timeout_ms, keep, keep_dead)

    # -- inspection and repair ---------------------------------------------------------

    def get(self, queue: str, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        one, params = rows.id_match(qualify(self._ns, queue), job_id)
        found = self._db.read(rows.SELECT_ONE.format(one=one), params)
        return rows.row_to_job(queue, found[0]) if found else None

    def counts(self, queue: str) -> dict[str, int]:
        full = qualify(self._ns, queue)
        now = now_ms()
        params = (full, full, now, full, now, full, full, full)
        ((waiting, due, delayed, active, completed, dead),) = self._db.read(rows.COUNTS, params)
        return dict(zip(STATES, (waiting + due, delayed, active, completed, dead)))

    def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        full, now = qualify(self._ns, queue), now_ms()
        params: tuple[Any, ...]
        if state == "waiting":  # due delayed jobs are waiting too (the next fetch moves them)
            sql, params = rows.LIST_WAITING, (full, full, now, limit)
        elif state == "delayed":
            sql, params = rows.LIST_DELAYED, (full, now, limit)
        else:
            finished = f" AND {rows.FINISHED}" if state in ("completed", "dead") else ""
            sql = rows.LIST_STATE.format(order=rows.LIST_ORDER[state], finished=finished)
            params = (full, state, limit)
        return [rows.row_to_job(queue, row) for row in self._db.read(sql, params)]

    def retry_dead(self, queue: str, job_id: str | None) -> int:
        if job_id is not None and not is_job_id(job_id):
            return 0
        full = qualify(self._ns, queue)
        one, params = ("queue = ?", (full,)) if job_id is None else rows.id_match(full, job_id)
        retried = self._db.write(rows.RETRY_DEAD.format(one=one), (now_ms(), *params))
        if retried:
            self._wakeups.bump(full)
        return retried

    def purge_dead(self, queue: str) -> int:
        return self._db.write(rows.PURGE_DEAD, (qualify(self._ns, queue),))

    def set_paused(self, queue: str, paused: bool) -> None:
        full = qualify(self._ns, queue)
        if paused:
            self._db.write(rows.PAUSE, (full,))
        else:
            self._db.write(rows.RESUME, (full,))
            self._wakeups.bump(full)

    def is_paused(self, queue: str) -> bool:
        return bool(self._db.read(rows.PAUSED, (qualify(self._ns, queue),)))

    def close(self) -> None:
        self._watch.stop()
        self._db.close()


def sqlite_queue_backend(path: str, namespace: str, busy_timeout_ms: int) -> SQLiteQueueBackend:
    """The queue backend in the SQLite file ``path`` (opened, created if need be)."""
    check_namespace(namespace)  # before the file is opened
    return SQLiteQueueBackend(Database(path, busy_timeout_ms=busy_timeout_ms), namespace)


def open_sqlite_queue(
    path: str, *, namespace: str = "", busy_timeout_ms: int = 10_000, **options: Any
) -> JobQueue:
    """A task queue in a SQLite file that threads and processes may share."""
    backend = sqlite_queue_backend(path, namespace, busy_timeout_ms)
    return JobQueue(backend, description=f"sqlite:///{backend.path}", **options)
