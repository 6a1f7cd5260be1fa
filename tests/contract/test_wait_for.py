"""The TaskQueue contract on every adapter and both APIs: wait_for (README, "Waiting for a
job's result").

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import threading
import time

import pytest

import jexkv
from tests.contract.queue_helpers import QUEUE, WAIT
from tests.helpers import wait_for

WAIT_MS = int(WAIT * 1000)


def in_thread(fn):
    """Run ``fn()`` in a thread; ``.result()`` joins it and returns (or raises) its outcome."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    class Outcome:
        @staticmethod
        def result(timeout=WAIT * 2):
            thread.join(timeout)
            assert not thread.is_alive(), "the waiter is still waiting"
            if "error" in box:
                raise box["error"]
            return box["value"]

    return Outcome


def test_a_waiter_gets_the_result_though_finished_jobs_are_not_kept(q):
    job = q.enqueue(QUEUE, "double", 21)
    waiter = in_thread(lambda: q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS))
    time.sleep(0.2)  # the waiter waits before the job runs
    q.register_worker(QUEUE, lambda job: {"doubled": job.payload * 2})
    done = waiter.result()
    assert (done.id, done.state, done.result) == (job.id, "completed", {"doubled": 42})
    assert (done.name, done.payload, done.error) == ("double", 21, None)
    # Once its waiter has it, the queue's keep rules (keep_completed=0) apply again.
    assert wait_for(lambda: q.get_job(QUEUE, job.id) is None)
    assert q.counts(QUEUE)["completed"] == 0


def test_many_waiters_on_one_job_all_get_it(q):
    job = q.enqueue(QUEUE, "task", None)
    waiters = [in_thread(lambda: q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)) for _ in range(5)]
    time.sleep(0.2)
    q.register_worker(QUEUE, lambda job: "ok")
    assert [w.result().result for w in waiters] == ["ok"] * 5


def test_a_dead_job_comes_back_with_its_error(q):
    def boom(job):
        raise ValueError("no such user")

    job = q.enqueue(QUEUE, "task", None, attempts=2, backoff=0)
    waiter = in_thread(lambda: q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS))
    time.sleep(0.1)
    q.register_worker(QUEUE, boom)
    dead = waiter.result()
    assert (dead.id, dead.state, dead.attempts_made) == (job.id, "dead", 2)
    assert dead.error.startswith("ValueError: no such user")


def test_a_job_finished_and_kept_already_returns_at_once(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    job = q.enqueue(QUEUE, "task", None)
    q.register_worker(QUEUE, lambda job: [1, 2])
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 1)
    started = time.monotonic()
    done = q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)
    assert (done.state, done.result) == ("completed", [1, 2])
    assert time.monotonic() - started < WAIT / 2
    assert q.get_job(QUEUE, job.id).state == "completed"  # still kept: keep_completed=10


def test_a_timeout_raises_wait_timeout_and_leaves_the_job(q):
    job = q.enqueue(QUEUE, "task", None)
    started = time.monotonic()
    with pytest.raises(jexkv.WaitTimeout, match=f"job '{job.id}' on queue '{QUEUE}'") as caught:
        q.wait_for(QUEUE, job.id, timeout_ms=300)
    took = time.monotonic() - started
    assert 0.29 <= took < 3, took
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, jexkv.JexkvError)
    assert q.get_job(QUEUE, job.id).state == "waiting"
    with pytest.raises(jexkv.WaitTimeout):
        q.wait_for(QUEUE, job.id, timeout_ms=0)


def test_an_unknown_id_is_job_not_found(q):
    with pytest.raises(jexkv.JobNotFound, match="no job '12345' on queue"):
        q.wait_for(QUEUE, "12345", timeout_ms=WAIT_MS)
    with pytest.raises(jexkv.JobNotFound):
        q.wait_for(QUEUE, "my-custom-id")


def test_bad_arguments_are_refused(q):
    job = q.enqueue(QUEUE, "task", None)
    with pytest.raises(jexkv.InvalidArgument, match="timeout_ms"):
        q.wait_for(QUEUE, job.id, timeout_ms=-1)
    with pytest.raises(jexkv.InvalidArgument, match="timeout_ms"):
        q.wait_for(QUEUE, job.id, timeout_ms=1.5)
    with pytest.raises(jexkv.InvalidArgumentType, match="job_id"):
        q.wait_for(QUEUE, 7)
    with pytest.raises(jexkv.InvalidArgument):
        q.wait_for("", job.id)


def test_a_waiter_on_another_queue_object_sees_the_finish(open_queue_on_same_backend):
    """The worker and the waiter share only the backend (on SQLite: two connections, the
    waiter woken by the commit watcher; on Redis: the events stream)."""
    workers, waiters = open_queue_on_same_backend(), open_queue_on_same_backend()
    job = waiters.enqueue(QUEUE, "task", {"n": 1}, job_id="order-7")
    waiter = in_thread(lambda: waiters.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS))
    time.sleep(0.2)
    workers.register_worker(QUEUE, lambda job: job.payload["n"] + 1)
    done = waiter.result()
    assert (done.id, done.state, done.result) == ("order-7", "completed", 2)


def test_waiting_for_a_delayed_job(q):
    job = q.enqueue(QUEUE, "task", None, delay_ms=300)
    q.register_worker(QUEUE, lambda job: "late")
    started = time.monotonic()
    done = q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)
    assert done.result == "late"
    assert time.monotonic() - started >= 0.25
