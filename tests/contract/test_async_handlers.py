"""``async def`` handlers on every adapter and both APIs (README, "asyncio"): on the sync
TaskQueue they run on an event loop the worker owns; on jexkv.aio as tasks of the loop that
registered them. Either way the engine's rules hold: results kept, failures retried and
dead-lettered, ``concurrency`` coroutines at once, leases renewed, cancellation on close,
and a handler that blocks its loop is reported.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import jexkv
from tests.contract.queue_helpers import QUEUE, counts, state_of
from tests.helpers import wait_for


def test_an_async_handler_is_awaited_and_its_result_kept(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)

    async def handle(job):
        await asyncio.sleep(0.01)
        return {"doubled": job.payload * 2}

    job = q.enqueue(QUEUE, "double", 21)
    q.register_worker(QUEUE, handle)
    assert wait_for(lambda: state_of(q, job.id) == "completed", timeout=10), state_of(q, job.id)
    assert q.get_job(QUEUE, job.id).result == {"doubled": 42}


def test_a_callable_object_with_an_async_call_is_awaited(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)

    class Handler:
        async def __call__(self, job):
            await asyncio.sleep(0)
            return "awaited"

    job = q.enqueue(QUEUE, "t")
    q.register_worker(QUEUE, Handler())
    assert wait_for(lambda: state_of(q, job.id) == "completed", timeout=10)
    assert q.get_job(QUEUE, job.id).result == "awaited"


def test_failures_are_retried_then_dead_lettered(open_queue_on_same_backend):
    q = open_queue_on_same_backend()
    runs = []

    async def handle(job):
        await asyncio.sleep(0)
        if job.name == "fatal":
            raise jexkv.Unrecoverable("no point trying again")
        runs.append(job.attempts_made)
        raise ValueError(f"boom {len(runs)}")

    job = q.enqueue(QUEUE, "t", attempts=3)
    fatal = q.enqueue(QUEUE, "fatal", attempts=3)
    q.register_worker(QUEUE, handle)
    assert wait_for(lambda: state_of(q, job.id) == "dead", timeout=10), state_of(q, job.id)
    assert wait_for(lambda: state_of(q, fatal.id) == "dead", timeout=10)
    assert runs == [0, 1, 2]
    dead = q.get_job(QUEUE, job.id)
    assert dead.error == "ValueError: boom 3"
    assert "ValueError" in (dead.traceback or "")
    assert q.get_job(QUEUE, fatal.id).attempts_made == 1  # Unrecoverable: no retry


def test_a_coroutine_returned_by_a_plain_function_is_not_a_result(open_queue_on_same_backend):
    """A plain function that returns a coroutine is not an async handler: the attempt fails
    naming what it returned, rather than storing a coroutine."""
    q = open_queue_on_same_backend()

    async def handle(job):
        return "never"

    job = q.enqueue(QUEUE, "t")
    q.register_worker(QUEUE, lambda j: handle(j))
    assert wait_for(lambda: state_of(q, job.id) == "dead", timeout=10)
    error = q.get_job(QUEUE, job.id).error
    assert error.startswith("TypeError: the handler") and "async def" in error, error


def test_concurrency_50_runs_50_coroutines_at_once(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=200)
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    async def handle(job):
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        deadline = time.monotonic() + 10
        while running[1] < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # until 50 run at once (or the test gives up)
        await asyncio.sleep(0.02)
        with lock:
            running[0] -= 1

    q.enqueue_many(QUEUE, [{"name": "t", "payload": i} for i in range(120)])
    q.register_worker(QUEUE, handle, concurrency=50)
    assert wait_for(lambda: counts(q)["completed"] == 120, timeout=20), counts(q)
    assert running[1] == 50  # 50 at once, and never more


def test_a_long_async_handler_keeps_its_lease(open_queue_on_same_backend):
    """Lease 0.6 s, handler 1.8 s: the lease is renewed while it runs, so the stalled check
    of another queue object on the backend (its own upkeep) never hands the job to its
    worker, and it runs once."""
    q = open_queue_on_same_backend(lease_ms=600, keep_completed=10)
    other = open_queue_on_same_backend(lease_ms=600, keep_completed=10)
    runs = []

    async def handle(job):
        runs.append(job.id)
        await asyncio.sleep(1.8)
        return "done"

    job = q.enqueue(QUEUE, "slow")
    q.register_worker(QUEUE, handle)
    assert wait_for(lambda: runs, timeout=10)
    other.register_worker(QUEUE, handle)
    assert wait_for(lambda: state_of(q, job.id) == "completed", timeout=20), state_of(q, job.id)
    assert runs == [job.id]


def test_close_cancels_running_handlers_and_hands_their_jobs_back(open_queue_on_same_backend):
    q = open_queue_on_same_backend()
    keeper = open_queue_on_same_backend()  # keeps a memory:// space alive after q closes
    started, cancelled = threading.Event(), threading.Event()

    async def handle(job):
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = q.enqueue(QUEUE, "forever")
    q.register_worker(QUEUE, handle)
    assert started.wait(10)
    began = time.monotonic()
    q.close(timeout_ms=200)
    assert time.monotonic() - began < 10
    assert cancelled.is_set()
    back = keeper.get_job(QUEUE, job.id)
    assert back is not None and back.state == "waiting", back  # handed back, not lost
    assert back.attempts_made == 0  # the cancelled attempt does not count


def test_an_async_handler_that_blocks_the_loop_is_reported(open_queue_on_same_backend, caplog):
    caplog.set_level(logging.WARNING, logger="jexkv")
    q = open_queue_on_same_backend(keep_completed=10)

    async def handle(job):
        time.sleep(0.6)  # the mistake: a blocking sleep inside async def

    job = q.enqueue(QUEUE, "sleepy")
    q.register_worker(QUEUE, handle)
    assert wait_for(lambda: state_of(q, job.id) == "completed", timeout=10)
    assert wait_for(
        lambda: any("event loop was blocked" in r.getMessage() for r in caplog.records), 5
    )
    said = [r.getMessage() for r in caplog.records if "event loop was blocked" in r.getMessage()]
    assert job.id in said[0] and "asyncio.to_thread" in said[0], said
