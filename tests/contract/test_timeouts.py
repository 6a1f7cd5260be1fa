"""The TaskQueue contract on every adapter and both APIs: job timeouts (README, "Timeouts").

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import jexkv
from tests.contract.queue_helpers import QUEUE, WAIT
from tests.helpers import wait_for

WAIT_MS = int(WAIT * 1000)


def test_an_attempt_past_its_timeout_fails_with_job_timeout_and_the_late_result_is_dropped(
    open_queue_on_same_backend, make_event
):
    q = open_queue_on_same_backend(keep_completed=10)
    release = make_event()
    finished_late = threading.Event()

    def handler(job):
        if job.payload == "hang":
            release.wait(WAIT)
            finished_late.set()
            return "late"
        return "quick"

    q.register_worker(QUEUE, handler, concurrency=1, timeout_ms=200)
    hung = q.enqueue(QUEUE, "task", "hang")
    other = q.enqueue(QUEUE, "task", "quick")
    dead = q.wait_for(QUEUE, hung.id, timeout_ms=WAIT_MS)
    assert dead.state == "dead"
    assert dead.error.startswith("JobTimeout: ") and "200 ms" in dead.error
    # concurrency=1, and the hung handler still runs: the other job runs all the same.
    assert q.wait_for(QUEUE, other.id, timeout_ms=WAIT_MS).result == "quick"
    release.set()
    assert finished_late.wait(WAIT)
    time.sleep(0.2)
    assert q.get_job(QUEUE, hung.id).state == "dead"  # the late "late" is never recorded
    assert q.get_job(QUEUE, hung.id).result is None


def test_a_timed_out_attempt_is_retried_while_attempts_remain(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    runs = []

    def handler(job):
        runs.append(job.attempts_made)
        if job.attempts_made == 0:
            time.sleep(0.5)  # past the bound, the first time only
        return job.attempts_made

    q.register_worker(QUEUE, handler, concurrency=2, timeout_ms=150)
    job = q.enqueue(QUEUE, "task", None, attempts=2)
    done = q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)
    assert (done.state, done.result, done.attempts_made) == ("completed", 1, 2)


def test_the_jobs_own_timeout_wins(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)

    def handler(job):
        time.sleep(job.payload)
        return "done"

    q.register_worker(QUEUE, handler, concurrency=2, timeout_ms=5000)
    tight = q.enqueue(QUEUE, "task", 0.5, timeout_ms=100)
    loose = q.enqueue(QUEUE, "task", 0.3)
    assert tight.timeout_ms == 100 and loose.timeout_ms is None
    assert q.get_job(QUEUE, tight.id).timeout_ms == 100
    assert q.wait_for(QUEUE, tight.id, timeout_ms=WAIT_MS).error.startswith("JobTimeout")
    assert q.wait_for(QUEUE, loose.id, timeout_ms=WAIT_MS).result == "done"


def test_an_async_handler_past_its_timeout_is_cancelled(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    cancelled = threading.Event()

    async def handler(job):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    q.register_worker(QUEUE, handler, timeout_ms=150)
    job = q.enqueue(QUEUE, "task", None)
    dead = q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)
    assert dead.state == "dead" and dead.error.startswith("JobTimeout")
    assert wait_for(cancelled.is_set)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_a_timeout_that_is_no_positive_int_is_refused(q, bad):
    with pytest.raises(ValueError, match="timeout_ms"):
        q.enqueue(QUEUE, "task", None, timeout_ms=bad)
    with pytest.raises(ValueError, match="timeout_ms"):
        q.enqueue_many(QUEUE, [{"name": "task", "timeout_ms": bad}])
    with pytest.raises(ValueError, match="timeout_ms"):
        q.register_worker(QUEUE, lambda job: None, timeout_ms=bad)
    assert q.counts(QUEUE)["waiting"] == 0


def test_enqueue_many_carries_timeouts(q):
    jobs = q.enqueue_many(QUEUE, [{"name": "a", "timeout_ms": 250}, {"name": "b"}])
    assert [j.timeout_ms for j in jobs] == [250, None]
    assert [q.get_job(QUEUE, j.id).timeout_ms for j in jobs] == [250, None]
    assert isinstance(jexkv.JobTimeout("x"), TimeoutError)
