"""The TaskQueue contract (README, "The task queue") on every adapter: lifecycle: close.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import jexkv
from tests.contract.queue_helpers import (
    HANDLER_WAIT,
    LATE,
    QUEUE,
    WAIT,
    Recorder,
    close_within,
    counts,
    drained,
    holding_first,
    jexkv_threads,
    state_of,
)
from tests.helpers import wait_for


def test_close_waits_for_running_handler(open_queue_on_same_backend, make_event):
    worker = open_queue_on_same_backend(keep_completed=10)
    observer = open_queue_on_same_backend()
    started, finished = make_event(), make_event()

    def handler(job):
        started.set()
        time.sleep(0.3)
        finished.set()
        return "done"

    worker.register_worker(QUEUE, handler)
    job = worker.enqueue(QUEUE, "task", None)
    assert started.wait(WAIT)
    close_within(worker)
    assert finished.is_set()
    done = observer.get_job(QUEUE, job.id)
    assert done is not None
    assert (done.state, done.result) == ("completed", "done")
    with pytest.raises(jexkv.ClosedError):
        worker.enqueue(QUEUE, "task", None)


def test_close_stops_fetching_and_leaves_waiting_jobs(open_queue_on_same_backend, make_event):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    started, release, rec = holding_first(make_event)
    worker.register_worker(QUEUE, rec)
    worker.enqueue(QUEUE, "task", "first")
    assert started.wait(WAIT)
    second = worker.enqueue(QUEUE, "task", "second")
    closer = threading.Thread(target=worker.close, daemon=True)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive()  # close() waits for the running handler
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert rec.payloads() == ["first"]
    assert state_of(observer, second.id) == "waiting"

    rec2 = Recorder()
    observer.register_worker(QUEUE, rec2)
    assert rec2.wait(1)
    assert rec2.payloads() == ["second"]


def test_close_right_after_enqueue_returns_and_loses_nothing(open_queue_on_same_backend):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    rec = Recorder()
    worker.register_worker(QUEUE, rec)
    worker.enqueue(QUEUE, "task", "warm-up")
    assert rec.wait(1)
    assert wait_for(lambda: drained(worker))
    job = worker.enqueue(QUEUE, "task", "last")
    close_within(worker)  # no handler is slow: close() must not hang
    assert rec.count(job.id) == 1 or state_of(observer, job.id) == "waiting"
    assert counts(observer)["active"] == 0


def test_close_while_jobs_stream_in_loses_nothing(open_queue_on_same_backend):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    rec = Recorder()
    worker.register_worker(QUEUE, rec, concurrency=2)
    jobs = worker.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(300)])
    assert rec.wait(1)
    close_within(worker)
    ran = Counter(job.id for job in rec.jobs)
    assert all(n == 1 for n in ran.values())
    assert counts(observer)["active"] == 0
    # every job either ran once or is still waiting for another worker
    assert [j.id for j in jobs if j.id not in ran and state_of(observer, j.id) != "waiting"] == []


def test_close_with_timeout_returns_while_handler_still_runs(q, make_event):
    started, release = make_event(), make_event()
    handler_threads: list = []

    def handler(job):
        handler_threads.append(threading.current_thread())
        started.set()
        release.wait(HANDLER_WAIT)

    q.register_worker(QUEUE, handler)
    q.enqueue(QUEUE, "task", None)
    assert started.wait(WAIT)
    t0 = time.monotonic()
    try:
        q.close(timeout_ms=200)
        took = time.monotonic() - t0
        assert 0.2 - 0.02 <= took < 0.2 + LATE
        with pytest.raises(jexkv.ClosedError):
            q.counts(QUEUE)
    finally:
        release.set()
        handler_threads[0].join(WAIT)
    assert not handler_threads[0].is_alive()


CLOSED_CALLS = {
    "enqueue": lambda q: q.enqueue(QUEUE, "task", None),
    "enqueue_many": lambda q: q.enqueue_many(QUEUE, [{"name": "task", "payload": None}]),
    "register_worker": lambda q: q.register_worker("fresh", lambda job: None),
    "get_job": lambda q: q.get_job(QUEUE, "1"),
    "counts": lambda q: q.counts(QUEUE),
    "dead_letters": lambda q: q.dead_letters(QUEUE),
    "retry_dead": lambda q: q.retry_dead(QUEUE),
    "purge_dead": lambda q: q.purge_dead(QUEUE),
    "pause": lambda q: q.pause(QUEUE),
    "resume": lambda q: q.resume(QUEUE),
    "is_paused": lambda q: q.is_paused(QUEUE),
}


@pytest.mark.parametrize("method", list(CLOSED_CALLS))
def test_every_method_raises_after_close(q, method):
    q.enqueue(QUEUE, "task", None)
    q.close()
    with pytest.raises(jexkv.ClosedError):
        CLOSED_CALLS[method](q)


def test_close_is_idempotent(q):
    q.register_worker(QUEUE, Recorder())
    close_within(q)
    assert q.close() is None
    assert q.close() is None
    assert q.close(timeout_ms=10) is None


def test_queue_is_a_context_manager(open_queue_on_same_backend):
    queue = open_queue_on_same_backend()
    with queue as entered:
        assert entered is queue
        entered.enqueue(QUEUE, "task", None)
    with pytest.raises(jexkv.ClosedError):
        queue.counts(QUEUE)


def test_closing_one_queue_leaves_others_working(q, open_queue_on_same_backend):
    other = open_queue_on_same_backend()
    job = q.enqueue(QUEUE, "task", "x")
    q.close()
    assert other.get_job(QUEUE, job.id).payload == "x"
    rec = Recorder()
    other.register_worker(QUEUE, rec)
    assert rec.wait(1)


def test_close_stops_every_thread_it_started(queue_url):
    before = jexkv_threads()
    queue = jexkv.open_queue(queue_url)
    try:
        rec = Recorder()
        queue.register_worker(QUEUE, rec, concurrency=3)
        queue.enqueue(QUEUE, "task", None)
        assert rec.wait(1)
    finally:
        close_within(queue)
    assert wait_for(lambda: not (jexkv_threads() - before))
