"""The TaskQueue contract (README, "The task queue") on every adapter: workers.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest

import jexkv
from tests.contract.queue_helpers import (
    HANDLER_WAIT,
    NO_JOBS,
    QUEUE,
    Recorder,
    counts,
    drained,
    explode_with_boom,
    state_of,
)
from tests.helpers import wait_for


def test_second_register_worker_on_same_queue_raises(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    with pytest.raises(jexkv.ConfigError):
        q.register_worker(QUEUE, Recorder())
    with pytest.raises(jexkv.ConfigError):
        q.register_worker(QUEUE, rec)
    other = Recorder()
    q.register_worker("other", other)  # another queue gets its own worker
    q.enqueue(QUEUE, "task", "mine")
    q.enqueue("other", "task", "theirs")
    assert rec.wait(1)
    assert other.wait(1)
    assert rec.payloads() == ["mine"]
    assert other.payloads() == ["theirs"]


def test_concurrency_4_runs_4_at_once(q):
    barrier = threading.Barrier(4)
    passed: list = []
    lock = threading.Lock()

    def handler(job):
        barrier.wait(timeout=5)  # BrokenBarrierError unless 4 handlers run at once
        with lock:
            passed.append(job.id)

    q.register_worker(QUEUE, handler, concurrency=4)
    for i in range(4):
        q.enqueue(QUEUE, "task", i)
    assert wait_for(lambda: len(passed) == 4, timeout=10)
    assert counts(q)["dead"] == 0


def test_concurrency_is_an_upper_bound(q):
    """concurrency=3 runs three handlers at once (each waits at a barrier of 3, which opens
    only then) and never four (each stays a moment past the barrier: room for a fourth)."""
    barrier = threading.Barrier(3)
    lock = threading.Lock()
    active = [0]
    most = [0]

    def handler(job):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            barrier.wait(timeout=HANDLER_WAIT)  # BrokenBarrierError unless 3 run at once
            time.sleep(0.02)
        finally:
            with lock:
                active[0] -= 1

    rec = Recorder(handler)
    for i in range(12):
        q.enqueue(QUEUE, "task", i)
    q.register_worker(QUEUE, rec, concurrency=3)
    assert rec.wait(12, timeout=2 * HANDLER_WAIT)
    assert wait_for(lambda: drained(q))
    assert counts(q)["dead"] == 0  # every handler passed its barrier
    assert most[0] == 3


def test_2000_jobs_concurrency_8_each_run_exactly_once(q):
    ran: list = []
    lock = threading.Lock()

    def handler(job):
        with lock:
            ran.append(job.id)

    jobs = q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(1000)])
    q.register_worker(QUEUE, handler, concurrency=8)
    for start in range(1000, 2000, 100):  # more arrive while the workers run
        jobs += q.enqueue_many(
            QUEUE, [{"name": "task", "payload": i} for i in range(start, start + 100)]
        )
    assert wait_for(lambda: len(ran) >= 2000 and drained(q), timeout=30)
    expected = Counter(job.id for job in jobs)
    assert len(expected) == 2000
    with lock:
        assert Counter(ran) == expected
    assert counts(q) == NO_JOBS


def test_two_worker_queue_objects_share_jobs_exactly_once(open_queue_on_same_backend):
    producer = open_queue_on_same_backend()
    first, second = open_queue_on_same_backend(), open_queue_on_same_backend()
    rec = Recorder()
    first.register_worker(QUEUE, rec, concurrency=4)
    second.register_worker(QUEUE, rec, concurrency=4)
    jobs = producer.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(300)])
    assert wait_for(lambda: rec.count() >= 300 and drained(producer), timeout=20)
    assert Counter(j.id for j in rec.jobs) == Counter(j.id for j in jobs)


def test_failing_handler_does_not_stop_the_worker(q):
    def then(job):
        if job.payload.startswith("bad"):
            raise RuntimeError("handler failed")
        return job.payload

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    for payload in ["bad-1", "good-1", "bad-2", "good-2"]:
        q.enqueue(QUEUE, "task", payload)
    assert rec.wait(4)
    assert wait_for(lambda: drained(q))
    assert rec.payloads() == ["bad-1", "good-1", "bad-2", "good-2"]
    assert counts(q) == {**NO_JOBS, "dead": 2}
    q.enqueue(QUEUE, "task", "good-3")
    assert rec.wait(5)


def test_non_json_result_fails_the_attempt(q):
    rec = Recorder(lambda job: {1, 2} if job.payload == "bad" else "fine")
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", "bad")
    q.enqueue(QUEUE, "task", "good")
    assert rec.wait(2)
    assert wait_for(lambda: drained(q) and counts(q)["dead"] == 1)
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.error.startswith("SerializationError")


def test_handler_exception_is_logged_with_job_id(q, caplog):
    caplog.set_level(logging.DEBUG, logger="jexkv")
    q.register_worker(QUEUE, explode_with_boom)
    q.enqueue(QUEUE, "task", None, job_id="log-me-42")

    def logged():
        return [
            r
            for r in list(caplog.records)
            if (r.name == "jexkv" or r.name.startswith("jexkv.")) and "log-me-42" in r.getMessage()
        ]

    assert wait_for(logged)
    assert any(r.levelno >= logging.WARNING for r in logged())


def test_namespaces_isolate_queues(q, open_queue_on_same_backend):
    a = open_queue_on_same_backend(namespace="a:")
    b = open_queue_on_same_backend(namespace="b:")
    a.enqueue(QUEUE, "task", "from-a", job_id="same-id")
    from_b = b.enqueue(QUEUE, "task", "from-b", job_id="same-id")
    assert from_b.payload == "from-b"  # not deduplicated against a's job
    assert counts(a) == counts(b) == {**NO_JOBS, "waiting": 1}
    assert counts(q) == NO_JOBS
    assert a.get_job(QUEUE, "same-id").payload == "from-a"
    assert q.get_job(QUEUE, "same-id") is None

    rec_b = Recorder()
    b.register_worker(QUEUE, rec_b)
    assert rec_b.wait(1)
    assert wait_for(lambda: drained(b))
    assert rec_b.payloads() == ["from-b"]
    assert counts(a) == {**NO_JOBS, "waiting": 1}

    rec_a = Recorder()
    a.register_worker(QUEUE, rec_a)
    assert rec_a.wait(1)
    assert rec_a.payloads() == ["from-a"]
    assert rec_b.payloads() == ["from-b"]


def test_producer_and_worker_on_separate_queue_objects(open_queue_on_same_backend):
    producer = open_queue_on_same_backend()
    worker = open_queue_on_same_backend(keep_completed=100)
    rec = Recorder(lambda job: job.payload * 2)
    worker.register_worker(QUEUE, rec)
    jobs = [producer.enqueue(QUEUE, "double", i) for i in range(20)]
    assert rec.wait(20)
    assert rec.payloads() == list(range(20))
    assert wait_for(lambda: all(state_of(producer, j.id) == "completed" for j in jobs))
    assert [producer.get_job(QUEUE, j.id).result for j in jobs] == [2 * i for i in range(20)]
