"""The TaskQueue contract (README, "The task queue") on every adapter: inspection (counts,
get_job, Job) and jobs(), listing one state.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import threading
import time

import pytest

import jexkv
from tests.contract.queue_helpers import (
    HANDLER_WAIT,
    NO_JOBS,
    QUEUE,
    WAIT,
    Recorder,
    counts,
    drained,
    explode_with_boom,
    state_of,
)
from tests.helpers import wait_for

# --------------------------------------------------------------------------
# inspection: counts, get_job, Job
# --------------------------------------------------------------------------


def test_counts_each_state(open_queue_on_same_backend, make_event):
    q = open_queue_on_same_backend(keep_completed=10)
    started, release = make_event(), make_event()

    def handler(job):
        if job.name == "fail":
            raise ValueError("boom")
        if job.name == "hold":
            started.set()
            release.wait(HANDLER_WAIT)

    assert counts(q) == NO_JOBS
    q.register_worker(QUEUE, handler, concurrency=1)
    done = q.enqueue(QUEUE, "done", None)
    assert wait_for(lambda: counts(q)["completed"] == 1)
    failed = q.enqueue(QUEUE, "fail", None)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    held = q.enqueue(QUEUE, "hold", None)
    assert started.wait(WAIT)
    waiting = [q.enqueue(QUEUE, "done", i) for i in range(2)]
    delayed = q.enqueue(QUEUE, "done", None, delay_ms=60_000)

    assert counts(q) == {"waiting": 2, "delayed": 1, "active": 1, "completed": 1, "dead": 1}
    assert state_of(q, done.id) == "completed"
    assert state_of(q, failed.id) == "dead"
    assert state_of(q, held.id) == "active"
    assert [state_of(q, j.id) for j in waiting] == ["waiting", "waiting"]
    assert state_of(q, delayed.id) == "delayed"

    release.set()
    assert wait_for(lambda: counts(q)["completed"] == 4)
    assert counts(q) == {**NO_JOBS, "delayed": 1, "completed": 4, "dead": 1}


def test_counts_are_per_queue(q):
    q.enqueue(QUEUE, "task", None)
    assert counts(q, "other") == NO_JOBS
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_get_job_fields_through_the_lifecycle(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)
    before_ms = time.time() * 1000
    job = q.enqueue(QUEUE, "send", {"to": "a@b.c"}, attempts=3, priority=2)
    after_ms = time.time() * 1000
    for snapshot in (job, q.get_job(QUEUE, job.id)):
        assert isinstance(snapshot, jexkv.Job)
        assert isinstance(snapshot.id, str)
        assert snapshot.id == job.id
        assert snapshot.queue == QUEUE
        assert snapshot.name == "send"
        assert snapshot.payload == {"to": "a@b.c"}
        assert snapshot.attempts == 3
        assert snapshot.attempts_made == 0
        assert snapshot.priority == 2
        assert type(snapshot.created_at_ms) is int
        assert before_ms - 5000 <= snapshot.created_at_ms <= after_ms + 5000
        assert snapshot.state == "waiting"
        assert snapshot.error is None
        assert snapshot.result is None

    rec = Recorder(lambda job: {"sent": True})
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: state_of(q, job.id) == "completed")
    [seen] = rec.jobs
    assert isinstance(seen, jexkv.Job)
    assert (seen.id, seen.queue, seen.name, seen.payload) == (job.id, QUEUE, "send", job.payload)
    assert (seen.attempts, seen.attempts_made, seen.priority) == (3, 0, 2)
    assert seen.created_at_ms == job.created_at_ms
    assert seen.state == "active"

    done = q.get_job(QUEUE, job.id)
    assert done.state == "completed"
    assert done.result == {"sent": True}
    assert done.error is None
    assert done.payload == {"to": "a@b.c"}
    assert done.created_at_ms == job.created_at_ms


def test_get_job_unknown_or_other_queue_is_none(q):
    job = q.enqueue(QUEUE, "task", None)
    assert q.get_job(QUEUE, "no-such-job") is None
    assert q.get_job("other", job.id) is None


def test_completed_job_not_kept_by_default(q):
    rec = Recorder(lambda job: "result")
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None)
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, job.id) is None and drained(q))
    assert counts(q) == NO_JOBS


def test_job_is_an_immutable_snapshot(q):
    payload = {"a": [1]}
    job = q.enqueue(QUEUE, "task", payload)
    with pytest.raises(AttributeError):
        job.state = "completed"
    payload["a"].append(2)
    job.payload["a"].append(3)
    assert q.get_job(QUEUE, job.id).payload == {"a": [1]}


def test_payload_comes_back_as_json_would_decode_it(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", {"t": (1, 2), "n": None, "f": 1.5, "s": "ü"})
    assert rec.wait(1)
    assert rec.payloads() == [{"t": [1, 2], "n": None, "f": 1.5, "s": "ü"}]


def test_keep_completed_keeps_newest_n_with_results(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=2)
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(5)]
    q.register_worker(QUEUE, Recorder(lambda job: job.payload * 10))
    assert wait_for(lambda: state_of(q, jobs[-1].id) == "completed")
    assert wait_for(lambda: counts(q) == {**NO_JOBS, "completed": 2})
    assert [q.get_job(QUEUE, j.id) for j in jobs[:3]] == [None, None, None]
    kept = [q.get_job(QUEUE, j.id) for j in jobs[3:]]
    assert [(j.state, j.result) for j in kept] == [("completed", 30), ("completed", 40)]


def test_keep_dead_keeps_newest_n(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_dead=2)

    def then(job):
        time.sleep(0.005)  # deaths a few ms apart
        raise ValueError("boom")

    rec = Recorder(then)
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(5)]
    q.register_worker(QUEUE, rec)
    assert rec.wait(5)
    assert wait_for(lambda: drained(q) and counts(q)["dead"] == 2)
    assert [j.payload for j in q.dead_letters(QUEUE)] == [4, 3]
    assert all(j.error == "ValueError: boom" for j in q.dead_letters(QUEUE))
    assert [q.get_job(QUEUE, j.id) for j in jobs[:3]] == [None, None, None]


def test_keep_dead_zero_keeps_none(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_dead=0)
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None)
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, job.id) is None and drained(q))
    assert counts(q) == NO_JOBS
    assert q.dead_letters(QUEUE) == []


# --------------------------------------------------------------------------
# jobs(): listing one state
# --------------------------------------------------------------------------


def test_jobs_lists_waiting_in_run_order_and_delayed_by_due_time(q):
    late = q.enqueue(QUEUE, "late", None, priority=3)
    first = q.enqueue(QUEUE, "first", None)
    second = q.enqueue(QUEUE, "second", None)
    soon = q.enqueue(QUEUE, "soon", None, delay_ms=60_000)
    sooner = q.enqueue(QUEUE, "sooner", None, delay_ms=30_000)
    assert [j.id for j in q.jobs(QUEUE)] == [first.id, second.id, late.id]
    assert [j.id for j in q.jobs(QUEUE, "waiting", limit=2)] == [first.id, second.id]
    assert [j.id for j in q.jobs(QUEUE, "delayed")] == [sooner.id, soon.id]
    assert all(j.state == "delayed" for j in q.jobs(QUEUE, "delayed"))
    assert q.jobs(QUEUE, "active") == []


def test_jobs_lists_completed_and_dead_newest_first(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    done = threading.Event()
    seen: list = []

    def handler(job):
        seen.append(job.id)
        if len(seen) == 4:
            done.set()
        if job.name == "bad":
            raise jexkv.Unrecoverable("no")
        return job.payload

    q.register_worker(QUEUE, handler)
    jobs = [q.enqueue(QUEUE, name, i) for i, name in enumerate(["ok", "bad", "ok", "bad"])]
    assert done.wait(WAIT)
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 2 and q.counts(QUEUE)["dead"] == 2)
    assert [j.id for j in q.jobs(QUEUE, "completed")] == [jobs[2].id, jobs[0].id]
    assert [j.result for j in q.jobs(QUEUE, "completed")] == [2, 0]
    assert [j.id for j in q.jobs(QUEUE, "dead")] == [jobs[3].id, jobs[1].id]
    assert [j.id for j in q.jobs(QUEUE, "dead")] == [j.id for j in q.dead_letters(QUEUE)]


@pytest.mark.parametrize("state", ["", "failed", "WAITING", None])
def test_jobs_refuses_an_unknown_state(q, state):
    with pytest.raises(ValueError):
        q.jobs(QUEUE, state)


def test_jobs_refuses_a_bad_limit(q):
    for limit in (-1, 1.5, True, "3"):
        with pytest.raises((TypeError, ValueError)):
            q.jobs(QUEUE, "waiting", limit=limit)
