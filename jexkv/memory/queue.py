"""MemoryQueueBackend: the queue steps over heaps and dicts in this process.

Rule: one lock guards a whole space; its idle workers, threads and asyncio tasks alike, wait
on the space's wake-ups (jexkv/wakeups.py), so an idle worker wakes the moment a job is
added (and, for a delayed job, at its due time, without polling). Every step is quick and
never blocks, so the asyncio API runs it on the loop. Heaps use lazy deletion: an entry
carries the record's version and is skipped when the record moved on since it was pushed.
Payloads and results are kept as JSON text, so every snapshot is a fresh copy.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from jexkv import forks
from jexkv.clock import steady_due_ms, steady_ms
from jexkv.codec import decode
from jexkv.contracts import Claim
from jexkv.jobs import STATES, Backoff, Job, NewJob, is_job_id, job_from, stalled_error
from jexkv.memory.registry import Registry
from jexkv.namespaces import check_namespace, qualify
from jexkv.schedules import (
    Schedule,
    ScheduleSpec,
    first_tick,
    next_tick,
    tick_job,
    tick_job_id,
    tick_of,
)
from jexkv.taskqueue import JobQueue
from jexkv.waiting import wait_local
from jexkv.wakeups import Wakeups

__all__ = ["MemoryQueueBackend", "MemoryQueueSpace", "open_memory_queue"]


@dataclass
class _Rec:
    id: str
    name: str
    payload: str
    attempts: int
    priority: int
    created_at: int
    backoff: dict[str, Any] | None
    seq: int
    state: str = "waiting"
    due_at: int = 0
    attempts_made: int = 0
    stall_count: int = 0
    error: str | None = None
    traceback: str | None = None
    result: str | None = None
    processed_at: int | None = None
    finished_at: int | None = None
    token: str | None = None
    lease_until: int = 0
    version: int = 0
    timeout_ms: int | None = None


@dataclass
class _Queue:
    name: str  # namespaced, as the space and its wake-ups know it
    jobs: dict[str, _Rec] = field(default_factory=dict)
    ready: list[tuple[int, int, str]] = field(default_factory=list)  # (order, version, id)
    delayed: list[tuple[int, int, int, str]] = field(default_factory=list)
    active: dict[str, _Rec] = field(default_factory=dict)
    completed: dict[str, _Rec] = field(default_factory=dict)  # oldest first
    dead: dict[str, _Rec] = field(default_factory=dict)  # oldest first
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    next_stall_check: int = 0
    paused: bool = False
    schedules: dict[str, _Sched] = field(default_factory=dict)


@dataclass
class _Sched:
    spec: ScheduleSpec
    next_run_at: int | None  # the tick whose job waits now (None: ended)
    runs: int


class MemoryQueueSpace:
    """Every queue of one memory:// URL (shared by name like the KV spaces)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}
        self.wakeups = Wakeups()
        # wait_for (jexkv/waiting.py): how many wait for each (queue, job id), the finished
        # records kept for them, and the wake-ups of finished jobs.
        self.watched: dict[tuple[str, str], int] = {}
        self.finished: dict[tuple[str, str], _Rec] = {}
        self.finishes = Wakeups()
        forks.hold(self)  # a child never inherits it taken (README, "Forking")

    def queue(self, name: str) -> _Queue:
        """The queue ``name``; call with ``lock`` held."""
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue(name)
        return q


def _snapshot(queue: str, rec: _Rec, new: NewJob | None = None) -> Job:
    """The Job of ``rec``; ``new``: the request that just added it, whose payload it shows."""
    return job_from(
        {
            "id": rec.id,
            "queue": queue,
            "name": rec.name,
            "payload": decode(rec.payload) if new is None else new.payload_value(),
            "attempts": rec.attempts,
            "attempts_made": rec.attempts_made,
            "priority": rec.priority,
            "created_at_ms": rec.created_at,
            "state": rec.state,
            "error": rec.error,
            "result": None if rec.result is None else decode(rec.result),
            "due_at_ms": rec.due_at,
            "traceback": rec.traceback,
            "stall_count": rec.stall_count,
            "backoff": None if rec.backoff is None else Backoff.from_dict(rec.backoff),
            "processed_at_ms": rec.processed_at,
            "finished_at_ms": rec.finished_at,
            "timeout_ms": rec.timeout_ms,
        }
    )


# Lease tokens only need to be unique within this process.
_tokens = itertools.count(1)


class MemoryQueueBackend:
    def __init__(self, space: MemoryQueueSpace, namespace: str = "") -> None:
        self._space = space
        self._ns = check_namespace(namespace)
        self._lock = space.lock
        self._wakeups = space.wakeups

    def _q(self, queue: str) -> _Queue:
        return self._space.queue(qualify(self._ns, queue))

    # -- moves between states (lock held) -------------------------------------------

    def _schedule(self, q: _Queue, rec: _Rec, due_at: int, now: int) -> None:
        rec.version += 1
        rec.due_at = due_at
        if due_at > now:
            rec.state = "delayed"
            heapq.heappush(q.delayed, (due_at, rec.seq, rec.version, rec.id))
            self._wakeups.bump(q.name)  # waiters look again: this one may be due first
        else:
            rec.state = "waiting"
            order = (rec.priority << 96) | (due_at << 48) | rec.seq  # one int compares fast
            heapq.heappush(q.ready, (order, rec.version, rec.id))
            self._wakeups.bump(q.name, one=True)

    def _promote(self, q: _Queue, now: int) -> None:
        delayed = q.delayed
        while delayed and delayed[0][0] <= now:
            due_at, _, version, job_id = heapq.heappop(delayed)
            rec = q.jobs.get(job_id)
            if rec is not None and rec.version == version and rec.state == "delayed":
                self._schedule(q, rec, due_at, now)

    def _finish(self, q: _Queue, rec: _Rec, state: str, keep: int | None, now: int) -> None:
        rec.version += 1
        rec.token = None
        rec.finished_at = now
        q.active.pop(rec.id, None)
        kept = q.completed if state == "completed" else q.dead
        rec.state = state
        key = (q.name, rec.id)
        if key in self._space.watched:  # a copy for its waiters, whatever the keep rule
            self._space.finished[key] = dataclasses.replace(rec)
        self._space.finishes.bump(q.name)
        if keep == 0:
            del q.jobs[rec.id]
            return
        kept[rec.id] = rec
        while keep is not None and len(kept) > keep:
            oldest = next(iter(kept))
            del kept[oldest], q.jobs[oldest]

    def _held(self, q: _Queue, job_id: str, token: str) -> _Rec | None:
        rec = q.active.get(job_id)
        return rec if rec is not None and rec.token == token else None

    # -- steps -----------------------------------------------------------------------

    def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
        with self._lock:
            q = self._q(queue)
            now = steady_ms()
            return [self._add(queue, q, new, now) for new in jobs]

    def _add(self, queue: str, q: _Queue, new: NewJob, now: int) -> Job:
        """Add one job (one with a kept id adds nothing); call with the lock held."""
        existing = q.jobs.get(new.job_id) if new.job_id else None
        if existing is not None:
            return _snapshot(queue, existing)
        seq = next(q.counter)
        rec = _Rec(
            id=new.job_id or str(seq),
            name=new.name,
            payload=new.payload,
            attempts=new.attempts,
            priority=new.priority,
            created_at=now,
            backoff=new.backoff,
            seq=seq,
            timeout_ms=new.timeout_ms,
        )
        q.jobs[rec.id] = rec
        self._schedule(q, rec, steady_due_ms(new.delay_ms) if new.delay_ms else now, now)
        return _snapshot(queue, rec, new)

    def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        with self._lock:
            q = self._q(queue)
            claims = self._claim(queue, q, lease_ms, limit, steady_ms())
            if not claims:
                due = q.delayed[0][0] if q.delayed and not q.paused else None
                self._wakeups.found_nothing(q.name, due)
            return claims

    def _claim(self, queue: str, q: _Queue, lease_ms: int, limit: int, now: int) -> list[Claim]:
        """Claim up to ``limit`` ready jobs; call with the lock held."""
        self._promote(q, now)
        claims: list[Claim] = []
        while q.ready and len(claims) < limit and not q.paused:
            _, version, job_id = heapq.heappop(q.ready)
            rec = q.jobs.get(job_id)
            if rec is None or rec.version != version or rec.state != "waiting":
                continue
            rec.version += 1
            rec.state = "active"
            rec.token = str(next(_tokens))
            rec.lease_until = now + lease_ms
            rec.processed_at = now
            q.active[job_id] = rec
            claims.append((_snapshot(queue, rec), rec.token))
            if job_id.startswith("repeat:"):
                self._next_tick(queue, q, job_id, now)
        return claims

    # -- schedules (jexkv/schedules.py) ------------------------------------------------

    def _next_tick(self, queue: str, q: _Queue, job_id: str, now: int) -> None:
        """A schedule's job was claimed: if it is its current tick's, make the next one."""
        found = tick_of(job_id)
        sched = None if found is None else q.schedules.get(found[0])
        if found is None or sched is None or sched.next_run_at != found[1]:
            return  # not a schedule's (any more), or not its current tick: nothing more
        sched.next_run_at = next_tick(sched.spec, found[1], now, sched.runs)
        if sched.next_run_at is not None:
            sched.runs += 1
            self._add(queue, q, tick_job(sched.spec, sched.next_run_at, now), now)

    def _drop_pending(self, q: _Queue, sched: _Sched) -> None:
        """Delete the job a schedule made for its next tick, unless it has started."""
        if sched.next_run_at is None:
            return
        rec = q.jobs.get(tick_job_id(sched.spec.id, sched.next_run_at))
        if rec is not None and rec.state in ("waiting", "delayed"):
            del q.jobs[rec.id]  # its heap entries are skipped from now on

    def schedule(self, queue: str, spec: ScheduleSpec) -> Schedule:
        with self._lock:
            q = self._q(queue)
            now = steady_ms()
            old = q.schedules.get(spec.id)
            if old is not None:
                self._drop_pending(q, old)
            tick = first_tick(spec, now)
            sched = q.schedules[spec.id] = _Sched(spec, tick, 0 if tick is None else 1)
            if tick is not None:
                self._add(queue, q, tick_job(spec, tick, now), now)
            return spec.schedule(queue, sched.next_run_at, sched.runs)

    def schedules(self, queue: str) -> list[Schedule]:
        with self._lock:
            q = self._q(queue)
            return [
                sched.spec.schedule(queue, sched.next_run_at, sched.runs)
                for _, sched in sorted(q.schedules.items())
            ]

    def unschedule(self, queue: str, schedule_id: str) -> bool:
        with self._lock:
            q = self._q(queue)
            sched = q.schedules.pop(schedule_id, None)
            if sched is None:
                return False
            self._drop_pending(q, sched)
            return True

    def seen(self, queue: str) -> int:
        return self._wakeups.seen(qualify(self._ns, queue))

    def wait(self, queue: str, seen: int, timeout_s: float, stop: threading.Event) -> None:
        self._wakeups.wait(qualify(self._ns, queue), seen, timeout_s, stop, steady_ms())

    async def wait_async(self, queue: str, seen: int, timeout_s: float) -> None:
        await self._wakeups.wait_async(qualify(self._ns, queue), seen, timeout_s, steady_ms())

    def notify(self, queue: str) -> None:
        self._wakeups.bump(qualify(self._ns, queue))

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        with self._lock:
            q = self._q(queue)
            now = steady_ms()
            lost = []
            for job_id, token, result in done:
                rec = self._held(q, job_id, token)
                if rec is None:
                    lost.append(job_id)
                    continue
                rec.attempts_made += 1
                rec.result = result
                self._finish(q, rec, "completed", keep, now)
            claims = self._claim(queue, q, next_lease_ms, next_limit, now) if next_limit else []
            return lost, claims

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            q = self._q(queue)
            now = steady_ms()
            for job_id, token in held:
                rec = self._held(q, job_id, token)
                if rec is not None:
                    rec.token = None
                    rec.processed_at = None
                    del q.active[job_id]
                    self._schedule(q, rec, rec.due_at, now)

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
        with self._lock:
            q = self._q(queue)
            rec = self._held(q, job_id, token)
            if rec is None:
                return False
            rec.attempts_made += 1
            rec.error, rec.traceback = error, traceback
            now = steady_ms()
            if retry_delay_ms is None:
                self._finish(q, rec, "dead", keep_dead, now)
            else:
                rec.token = None
                del q.active[job_id]
                self._schedule(q, rec, steady_due_ms(retry_delay_ms), now)
            return True

    def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        with self._lock:
            q = self._q(queue)
            until = steady_ms() + lease_ms
            lost = []
            for job_id, token in held:
                rec = self._held(q, job_id, token)
                if rec is None:
                    lost.append(job_id)
                else:
                    rec.lease_until = until
            return lost

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        with self._lock:
            q = self._q(queue)
            now = steady_ms()
            if now < q.next_stall_check:
                return 0
            q.next_stall_check = now + interval_ms
            stalled = [rec for rec in q.active.values() if rec.lease_until <= now]
            for rec in stalled:
                rec.stall_count += 1
                rec.attempts_made += 1  # the lost run counts as an attempt
                if rec.stall_count > max_stalls:
                    rec.error = stalled_error(rec.stall_count, max_stalls)
                    self._finish(q, rec, "dead", keep_dead, now)
                else:
                    rec.token = None
                    del q.active[rec.id]
                    self._schedule(q, rec, rec.due_at, now)
            return len(stalled)

    # -- wait_for's steps (jexkv/waiting.py) -------------------------------------------

    def watch_start(self, queue: str, job_id: str, waiter: str, until: int) -> Job | None:
        with self._lock:
            key = (self._q(queue).name, job_id)
            self._space.watched[key] = self._space.watched.get(key, 0) + 1
        return self.watch_check(queue, job_id, waiter, None)

    def watch_check(
        self, queue: str, job_id: str, waiter: str, renew_until: int | None
    ) -> Job | None:
        with self._lock:
            rec = self._space.finished.get((self._q(queue).name, job_id))
            if rec is not None:
                return _snapshot(queue, rec)
        return self.get(queue, job_id)

    def watch_stop(
        self, queue: str, job_id: str, waiter: str, keep: int, keep_dead: int | None
    ) -> None:
        with self._lock:
            key = (self._q(queue).name, job_id)
            left = self._space.watched.get(key, 1) - 1
            if left > 0:
                self._space.watched[key] = left
            else:
                self._space.watched.pop(key, None)
                self._space.finished.pop(key, None)

    def finish_seen(self, queue: str) -> int:
        return self._space.finishes.seen(qualify(self._ns, queue))

    def finish_wait(self, queue: str, seen: int, timeout_s: float) -> None:
        full = qualify(self._ns, queue)
        self._space.finishes.wait(full, seen, timeout_s, threading.Event(), steady_ms())

    async def finish_wait_async(self, queue: str, seen: int, timeout_s: float) -> None:
        full = qualify(self._ns, queue)
        await self._space.finishes.wait_async(full, seen, timeout_s, steady_ms())

    def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        return wait_local(self, queue, job_id, timeout_ms, keep, keep_dead)

    def get(self, queue: str, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        with self._lock:
            q = self._q(queue)
            self._promote(q, steady_ms())
            rec = q.jobs.get(job_id)
            return None if rec is None else _snapshot(queue, rec)

    def counts(self, queue: str) -> dict[str, int]:
        with self._lock:
            q = self._q(queue)
            self._promote(q, steady_ms())
            counts = dict.fromkeys(STATES, 0)
            for rec in q.jobs.values():
                counts[rec.state] += 1
            return counts

    def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        with self._lock:
            q = self._q(queue)
            self._promote(q, steady_ms())
            if state in ("completed", "dead"):
                kept = q.completed if state == "completed" else q.dead
                recs = list(kept.values())[::-1]
            else:
                recs = [rec for rec in q.jobs.values() if rec.state == state]
                if state == "active":
                    recs.sort(key=lambda rec: (rec.processed_at or 0, rec.seq))
                elif state == "delayed":
                    recs.sort(key=lambda rec: (rec.due_at, rec.seq))
                else:
                    recs.sort(key=lambda rec: (rec.priority, rec.due_at, rec.seq))
            return [_snapshot(queue, rec) for rec in recs[:limit]]

    def retry_dead(self, queue: str, job_id: str | None) -> int:
        if job_id is not None and not is_job_id(job_id):
            return 0
        with self._lock:
            q = self._q(queue)
            if job_id is None:
                recs = list(q.dead.values())
            else:
                rec = q.dead.get(job_id)
                recs = [] if rec is None else [rec]
            now = steady_ms()
            for rec in recs:
                del q.dead[rec.id]
                rec.attempts_made = rec.stall_count = 0
                rec.error = rec.traceback = None
                rec.finished_at = rec.processed_at = None
                self._schedule(q, rec, now, now)
            return len(recs)

    def purge_dead(self, queue: str) -> int:
        with self._lock:
            q = self._q(queue)
            purged = len(q.dead)
            for job_id in q.dead:
                del q.jobs[job_id]
            q.dead.clear()
            return purged

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._lock:
            q = self._q(queue)
            q.paused = paused
            if not paused:
                self._wakeups.bump(q.name)

    def is_paused(self, queue: str) -> bool:
        with self._lock:
            return self._q(queue).paused

    def close(self) -> None:
        pass  # the space is released by the owner


_spaces = Registry()


def memory_queue_backend(
    name: str, namespace: str
) -> tuple[MemoryQueueBackend, Callable[[], None]]:
    """The backend of ``memory://NAME`` in ``namespace``, and what releases its space."""
    space = _spaces.acquire(name, MemoryQueueSpace)
    return MemoryQueueBackend(space, namespace), lambda: _spaces.release(
        name, space, lambda _: None
    )


def open_memory_queue(name: str = "", *, namespace: str = "", **options: Any) -> JobQueue:
    """A task queue in this process; ``memory://NAME`` shares its jobs by name."""
    backend, release = memory_queue_backend(name, namespace)
    return JobQueue(backend, description=f"memory://{name}", on_close=release, **options)
