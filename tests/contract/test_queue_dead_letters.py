"""The TaskQueue contract (README, "The task queue") on every adapter: dead letters.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import threading
import time

import jexkv
from tests.contract.queue_helpers import (
    NO_JOBS,
    QUEUE,
    Recorder,
    counts,
    explode_with_boom,
    state_of,
)
from tests.helpers import wait_for


def test_unrecoverable_runs_once_and_is_dead(q):
    assert issubclass(jexkv.Unrecoverable, jexkv.JexkvError)

    def then(job):
        raise jexkv.Unrecoverable("bad input")

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=5)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert rec.count() == 1
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.state == "dead"
    assert dead.error == "Unrecoverable: bad input"
    assert counts(q) == {**NO_JOBS, "dead": 1}


def test_dead_letter_keeps_error_traceback_and_attempts(q):
    job = q.enqueue(QUEUE, "send", {"to": "a@b.c"}, attempts=3)
    q.register_worker(QUEUE, explode_with_boom)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.queue == QUEUE
    assert dead.name == "send"
    assert dead.payload == {"to": "a@b.c"}
    assert dead.state == "dead"
    assert dead.error == "ValueError: boom"
    assert "explode_with_boom" in dead.traceback
    assert dead.attempts == 3
    assert dead.attempts_made == 3
    stored = q.get_job(QUEUE, job.id)
    assert stored.state == "dead"
    assert stored.error == "ValueError: boom"


def test_dead_letters_newest_first_and_limit(q):
    def then(job):
        time.sleep(0.005)  # deaths a few ms apart
        raise ValueError(f"boom {job.payload}")

    # priorities make them die in the reverse of their enqueue order: c, b, a
    q.enqueue(QUEUE, "task", "a", priority=3)
    q.enqueue(QUEUE, "task", "b", priority=2)
    q.enqueue(QUEUE, "task", "c", priority=1)
    q.register_worker(QUEUE, Recorder(then))
    assert wait_for(lambda: counts(q)["dead"] == 3)
    dead = q.dead_letters(QUEUE)
    assert [j.payload for j in dead] == ["a", "b", "c"]
    assert [j.error for j in dead] == [f"ValueError: boom {p}" for p in "abc"]
    assert [j.payload for j in q.dead_letters(QUEUE, limit=2)] == ["a", "b"]
    assert [j.payload for j in q.dead_letters(QUEUE, limit=1)] == ["a"]


def test_dead_letters_default_limit_is_100(q):
    q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(105)])
    q.register_worker(QUEUE, explode_with_boom, concurrency=4)
    assert wait_for(lambda: counts(q)["dead"] == 105, timeout=15)
    assert len(q.dead_letters(QUEUE)) == 100
    assert len(q.dead_letters(QUEUE, limit=105)) == 105


def test_dead_letters_of_unknown_queue_is_empty(q):
    assert q.dead_letters("nothing-here") == []


def test_retry_dead_one_job(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    failing = threading.Event()
    failing.set()

    def then(job):
        if failing.is_set():
            raise ValueError("boom")
        return f"done {job.payload}"

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    a = q.enqueue(QUEUE, "task", "a", attempts=2)
    b = q.enqueue(QUEUE, "task", "b", attempts=2)
    assert wait_for(lambda: counts(q)["dead"] == 2)
    failing.clear()

    assert q.retry_dead(QUEUE, a.id) == 1
    assert wait_for(lambda: state_of(q, a.id) == "completed")
    assert [j.attempts_made for j in rec.jobs if j.id == a.id] == [0, 1, 0]
    done = q.get_job(QUEUE, a.id)
    assert done.result == "done a"
    assert done.error is None
    assert rec.count(b.id) == 2
    assert [j.id for j in q.dead_letters(QUEUE)] == [b.id]
    assert counts(q) == {**NO_JOBS, "completed": 1, "dead": 1}


def test_retry_dead_all_gives_fresh_attempt_budget(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    jobs = [q.enqueue(QUEUE, "task", i, attempts=2) for i in range(3)]
    assert wait_for(lambda: counts(q)["dead"] == 3)
    assert rec.count() == 6

    assert q.retry_dead(QUEUE) == 3
    assert wait_for(lambda: rec.count() == 12 and counts(q)["dead"] == 3)
    for job in jobs:
        assert [j.attempts_made for j in rec.jobs if j.id == job.id] == [0, 1, 0, 1]
    assert all(j.attempts_made == 2 for j in q.dead_letters(QUEUE))
    assert counts(q) == {**NO_JOBS, "dead": 3}


def test_retry_dead_with_nothing_dead(q):
    job = q.enqueue(QUEUE, "task", None)
    assert q.retry_dead(QUEUE) == 0
    assert q.retry_dead(QUEUE, "unknown") == 0
    assert q.retry_dead(QUEUE, job.id) == 0  # waiting, not dead
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_purge_dead(q):
    q.register_worker(QUEUE, explode_with_boom)
    dead = [q.enqueue(QUEUE, "task", i) for i in range(3)]
    assert wait_for(lambda: counts(q)["dead"] == 3)
    later = q.enqueue(QUEUE, "task", "later", delay_ms=60_000)

    assert q.purge_dead(QUEUE) == 3
    assert counts(q) == {**NO_JOBS, "delayed": 1}
    assert q.dead_letters(QUEUE) == []
    assert all(q.get_job(QUEUE, job.id) is None for job in dead)
    assert q.get_job(QUEUE, later.id).state == "delayed"
    assert q.purge_dead(QUEUE) == 0
    assert q.retry_dead(QUEUE) == 0
