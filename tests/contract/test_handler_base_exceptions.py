"""A handler that raises a BaseException that is no Exception (SystemExit, KeyboardInterrupt,
GeneratorExit, asyncio.CancelledError, a subclass of BaseException) fails that attempt at
once, like any other failure: retried while attempts remain, else dead with the error.
The worker thread logs it and goes on (see the README, the queue's handler rules)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from tests.helpers import wait_for

QUEUE = "base-exc"
LEASE_MS = 60_000  # far longer than any wait below: a job must not wait for its lease


class Custom(BaseException):
    pass


KINDS = {
    "SystemExit": (lambda: SystemExit(3), "SystemExit: 3"),
    "KeyboardInterrupt": (lambda: KeyboardInterrupt("ctrl-c"), "KeyboardInterrupt: ctrl-c"),
    "GeneratorExit": (lambda: GeneratorExit("closed"), "GeneratorExit: closed"),
    "CancelledError": (lambda: asyncio.CancelledError("cancelled"), "CancelledError: cancelled"),
    "Custom": (lambda: Custom("boom"), "Custom: boom"),
}


@pytest.fixture(params=list(KINDS), ids=list(KINDS))
def kind(request):
    return KINDS[request.param]


def _state(q, job_id):
    job = q.get_job(QUEUE, job_id)
    return None if job is None else job.state


def _live_slots(test_loop):
    """The names of the queue's live worker slots: threads on the sync API, tasks of the
    test's loop on jexkv.aio."""
    prefix = f"jexkv-worker-{QUEUE}-"
    if test_loop is None:
        return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))
    tasks = test_loop.call(asyncio.all_tasks)
    return sorted(t.get_name() for t in tasks if t.get_name().startswith(prefix) and not t.done())


def test_the_attempt_fails_at_once_and_is_retried(open_queue_on_same_backend, kind):
    make, _ = kind
    q = open_queue_on_same_backend(lease_ms=LEASE_MS, keep_completed=10)
    job = q.enqueue(QUEUE, "t", attempts=2)
    runs = []

    def handler(run):
        runs.append(run.attempts_made)
        if run.attempts_made == 0:
            raise make()
        return "ok"

    q.register_worker(QUEUE, handler, concurrency=1)
    assert wait_for(lambda: _state(q, job.id) == "completed", timeout=15), (
        f"state {_state(q, job.id)!r} after runs {runs}"
    )
    assert runs == [0, 1]
    assert q.get_job(QUEUE, job.id).result == "ok"


def test_the_last_attempt_goes_dead_with_the_error(open_queue_on_same_backend, kind):
    make, error = kind
    q = open_queue_on_same_backend(lease_ms=LEASE_MS)
    job = q.enqueue(QUEUE, "t", attempts=1)

    def handler(run):
        raise make()

    q.register_worker(QUEUE, handler, concurrency=1)
    assert wait_for(lambda: _state(q, job.id) == "dead", timeout=15), _state(q, job.id)
    dead = q.get_job(QUEUE, job.id)
    assert dead.error == error
    assert error.split(":")[0] in (dead.traceback or "")
    assert q.counts(QUEUE)["active"] == 0


def test_the_thread_goes_on_with_the_next_jobs(open_queue_on_same_backend, kind, caplog, test_loop):
    make, error = kind
    caplog.set_level(logging.ERROR, logger="jexkv")
    q = open_queue_on_same_backend(lease_ms=LEASE_MS, keep_completed=100)
    # Enqueued before the worker starts: the one thread claims them in one batch.
    bad = q.enqueue(QUEUE, "bad", attempts=1)
    good = [q.enqueue(QUEUE, "good", {"n": n}) for n in range(5)]
    done = []

    def handler(run):
        if run.name == "bad":
            raise make()
        done.append(run.payload["n"])
        return run.payload["n"]

    q.register_worker(QUEUE, handler, concurrency=1)
    assert wait_for(lambda: all(_state(q, j.id) == "completed" for j in good), timeout=15), (
        f"done {done}, bad {_state(q, bad.id)!r}"
    )
    assert sorted(done) == list(range(5))
    assert _state(q, bad.id) == "dead"
    assert _live_slots(test_loop) == [f"jexkv-worker-{QUEUE}-1"]
    lines = [r.getMessage() for r in caplog.records if bad.id in r.getMessage()]
    said = [line for line in lines if error in line and "BaseException" in line]
    assert any("goes on" in line for line in said), lines


def test_every_thread_of_a_pool_lives_on(open_queue_on_same_backend, kind, test_loop):
    make, _ = kind
    q = open_queue_on_same_backend(lease_ms=LEASE_MS)
    jobs = [q.enqueue(QUEUE, "bad", attempts=1) for _ in range(8)]

    def handler(run):
        raise make()

    q.register_worker(QUEUE, handler, concurrency=3)
    assert wait_for(lambda: q.counts(QUEUE)["dead"] == len(jobs), timeout=15), q.counts(QUEUE)
    assert _live_slots(test_loop) == [f"jexkv-worker-{QUEUE}-{i}" for i in (1, 2, 3)]
