"""The TaskQueue contract (README, "The task queue") on every adapter: order: FIFO, priority, delay.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import time

import pytest

from tests.contract.queue_helpers import (
    CLOCK_SLACK,
    LATE,
    NO_JOBS,
    QUEUE,
    WAIT,
    Recorder,
    counts,
    holding_first,
)


def test_fifo_with_concurrency_1(q):
    for i in range(20):
        q.enqueue(QUEUE, "task", i)
    rec = Recorder()
    q.register_worker(QUEUE, rec, concurrency=1)
    assert rec.wait(20)
    assert rec.payloads() == list(range(20))


def test_fifo_for_jobs_enqueued_while_worker_is_busy(q, make_event):
    started, release, rec = holding_first(make_event)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "first")
    assert started.wait(WAIT)
    for i in range(10):
        q.enqueue(QUEUE, "task", i)
    release.set()
    assert rec.wait(11)
    assert rec.payloads() == ["first", *range(10)]


def test_priority_lower_first_same_priority_fifo(q):
    priorities = [5, 0, 3, 1, 0, 5, 3, 1, 0, 2]
    for i, priority in enumerate(priorities):
        q.enqueue(QUEUE, "task", i, priority=priority)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(len(priorities))
    assert rec.payloads() == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))


def test_priority_zero_runs_before_any_nonzero(q):
    q.enqueue(QUEUE, "task", "p2", priority=2)
    q.enqueue(QUEUE, "task", "p1", priority=1)
    q.enqueue(QUEUE, "task", "default")
    q.enqueue(QUEUE, "task", "p0", priority=0)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(4)
    assert rec.payloads() == ["default", "p0", "p1", "p2"]


@pytest.mark.parametrize("delay_ms", [30, 300])
def test_delay_never_early_and_not_much_late(q, delay_ms):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    before = time.monotonic()
    job = q.enqueue(QUEUE, "task", None, delay_ms=delay_ms)
    assert job.state == "delayed"
    assert rec.wait(1)
    elapsed = rec.starts()[0] - before
    assert elapsed >= delay_ms / 1000 - CLOCK_SLACK
    assert elapsed < delay_ms / 1000 + LATE


def test_zero_delay_is_waiting(q):
    job = q.enqueue(QUEUE, "task", None, delay_ms=0)
    assert job.state == "waiting"
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_delayed_jobs_run_in_due_time_order(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "late", delay_ms=400)
    q.enqueue(QUEUE, "task", "early", delay_ms=100)
    q.enqueue(QUEUE, "task", "middle", delay_ms=250)
    q.enqueue(QUEUE, "task", "now")
    assert rec.wait(4)
    assert rec.payloads() == ["now", "early", "middle", "late"]


def test_due_delayed_jobs_run_by_due_time_not_enqueue_order(q):
    q.enqueue(QUEUE, "task", "c", delay_ms=150)
    q.enqueue(QUEUE, "task", "b", delay_ms=100)
    q.enqueue(QUEUE, "task", "a", delay_ms=50)
    time.sleep(0.25)  # all three are due; no worker yet
    q.enqueue(QUEUE, "task", "d")  # due now, i.e. after the three others
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(4)
    assert rec.payloads() == ["a", "b", "c", "d"]


def test_priority_applies_to_due_delayed_jobs(q):
    q.enqueue(QUEUE, "task", "p1", priority=1)
    q.enqueue(QUEUE, "task", "p0-delayed", delay_ms=50)
    time.sleep(0.15)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(2)
    assert rec.payloads() == ["p0-delayed", "p1"]
