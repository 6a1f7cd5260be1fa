"""The TaskQueue contract on every adapter and both APIs: process workers (README, "Threads,
async handlers or processes"). The handlers live in tests/contract/process_handlers.py."""

from __future__ import annotations

import os
import time

import pytest

import jexkv
from tests.contract import process_handlers
from tests.contract.queue_helpers import QUEUE, WAIT
from tests.helpers import pid_alive, wait_for

WAIT_MS = int(WAIT * 1000) * 2  # a child process starts in about 0.1 s


@pytest.fixture
def pq(open_queue_on_same_backend):
    return open_queue_on_same_backend(keep_completed=100, keep_dead=100)


def _run(q, *payloads, **options):
    q.register_worker(QUEUE, process_handlers.work, processes=True, **options)
    jobs = [q.enqueue(QUEUE, "task", payload) for payload in payloads]
    return [q.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS) for job in jobs]


def test_handlers_run_in_child_processes_and_results_and_errors_come_back(pq):
    ok, failed, unrecoverable = _run(
        pq, {"op": "ok", "n": 7}, {"op": "fail"}, {"op": "unrecoverable"}, concurrency=2
    )
    assert ok.state == "completed" and ok.result["n"] == 7
    assert ok.result["pid"] != os.getpid()
    assert failed.state == "dead" and failed.error == "ValueError: nope"
    assert (
        "process_handlers.py" in failed.traceback and 'raise ValueError("nope")' in failed.traceback
    )
    assert unrecoverable.error == "Unrecoverable: bad input"


@pytest.mark.parametrize(
    ("op", "words"),
    [
        ("exit3", "it exited with code 3"),
        ("kill", "it was killed by SIGKILL"),
        ("memory", "it ran out of memory: MemoryError: could not allocate 10 GiB"),
    ],
)
def test_a_child_that_dies_fails_the_attempt_at_once(pq, op, words):
    started = time.monotonic()
    crashed, after = _run(pq, {"op": op}, {"op": "ok"})
    assert crashed.state == "dead"
    assert crashed.error.startswith("WorkerCrashed: the worker process running job")
    assert words in crashed.error
    assert time.monotonic() - started < 10  # not a lease's wait (30 s)
    assert after.state == "completed"  # a new child took the next job


def test_an_endless_handler_is_killed_at_its_timeout_and_replaced(pq):
    endless, after = _run(pq, {"op": "loop"}, {"op": "ok"}, timeout_ms=500)
    assert endless.state == "dead" and endless.error.startswith("JobTimeout")
    assert after.state == "completed"


def test_max_jobs_per_process_replaces_children(pq):
    done = _run(pq, *({"op": "ok", "n": n} for n in range(6)), max_jobs_per_process=2)
    pids = [job.result["pid"] for job in done]
    assert len(set(pids)) == 3, pids
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]


def test_no_child_survives_close(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    done = _run(q, {"op": "ok"}, {"op": "ok"}, concurrency=2)
    pids = {job.result["pid"] for job in done}
    assert all(pid_alive(pid) for pid in pids)
    q.close(timeout_ms=5000)
    assert wait_for(lambda: not any(pid_alive(pid) for pid in pids))


def test_an_async_handler_runs_in_a_child_too(pq):
    pq.register_worker(QUEUE, process_handlers.async_work, processes=True)
    job = pq.enqueue(QUEUE, "task", None)
    done = pq.wait_for(QUEUE, job.id, timeout_ms=WAIT_MS)
    assert done.result["async"] is True and done.result["pid"] != os.getpid()


def test_handlers_a_child_cannot_import_are_refused(q):
    def closure(job):
        return None

    class Local:
        def handle(self, job):
            return None

    for handler in (lambda job: None, closure, Local().handle):
        with pytest.raises(jexkv.ConfigError, match="processes=True"):
            q.register_worker(QUEUE, handler, processes=True)
    with pytest.raises(jexkv.ConfigError, match="max_jobs_per_process goes with processes=True"):
        q.register_worker(QUEUE, process_handlers.work, max_jobs_per_process=3)
    with pytest.raises(ValueError, match="max_jobs_per_process"):
        q.register_worker(QUEUE, process_handlers.work, processes=True, max_jobs_per_process=0)
    with pytest.raises(TypeError, match="processes"):
        q.register_worker(QUEUE, process_handlers.work, processes=2)
