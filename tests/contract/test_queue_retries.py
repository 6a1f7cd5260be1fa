"""The TaskQueue contract (README, "The task queue") on every adapter: attempts and backoff.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import statistics

import pytest

import jexkv
from tests.contract.queue_helpers import (
    CLOCK_SLACK,
    LATE,
    NO_JOBS,
    QUEUE,
    Recorder,
    counts,
    explode_with_boom,
    gaps,
    state_of,
)
from tests.helpers import wait_for


def test_retry_without_backoff_runs_every_attempt(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=3)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    assert {j.id for j in rec.jobs} == {job.id}
    assert counts(q) == {**NO_JOBS, "dead": 1}


def test_retry_then_success_completes(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)

    def then(job):
        if job.attempts_made < 2:
            raise ValueError("not yet")
        return "third time lucky"

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=5)
    assert wait_for(lambda: state_of(q, job.id) == "completed")
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    assert q.get_job(QUEUE, job.id).result == "third time lucky"
    assert counts(q) == {**NO_JOBS, "completed": 1}


def test_failed_attempt_with_attempts_left_is_delayed_with_error(q):
    q.register_worker(QUEUE, explode_with_boom)
    job = q.enqueue(QUEUE, "task", None, attempts=2, backoff=60_000)
    assert wait_for(lambda: state_of(q, job.id) == "delayed")
    retrying = q.get_job(QUEUE, job.id)
    assert retrying.attempts_made == 1
    assert retrying.error == "ValueError: boom"
    assert counts(q) == {**NO_JOBS, "delayed": 1}


@pytest.mark.parametrize(
    "make_backoff", [lambda: 100, lambda: jexkv.Backoff.fixed(100)], ids=["int", "Backoff.fixed"]
)
def test_fixed_backoff_spacing(q, make_backoff):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", None, attempts=3, backoff=make_backoff())
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    for gap in gaps(rec.starts()):
        assert 0.1 - CLOCK_SLACK <= gap < 0.1 + LATE


def test_exponential_backoff_doubles(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", None, attempts=4, backoff=jexkv.Backoff.exponential(50))
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2, 3]
    for gap, expected in zip(gaps(rec.starts()), [0.05, 0.1, 0.2]):
        assert expected - CLOCK_SLACK <= gap < expected + LATE


def test_exponential_backoff_capped_by_max_ms(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    backoff = jexkv.Backoff.exponential(60, max_ms=100)
    q.enqueue(QUEUE, "task", None, attempts=5, backoff=backoff)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    spacing = gaps(rec.starts())
    assert len(spacing) == 4
    for gap, expected in zip(spacing, [0.06, 0.1, 0.1, 0.1]):
        assert gap >= expected - CLOCK_SLACK
    # Uncapped, the last two would wait 240 + 480 ms; capped, 100 + 100 ms.
    assert spacing[2] + spacing[3] < 0.6


def test_exponential_jitter_keeps_delay_within_range(q):
    # exponential(300, jitter=0.5): the first retry waits a delay drawn from [150, 300] ms.
    n = 10

    def then(job):
        if job.attempts_made == 0:
            raise ValueError("first attempt fails")

    rec = Recorder(then)
    q.register_worker(QUEUE, rec, concurrency=n)
    backoff = jexkv.Backoff.exponential(300, jitter=0.5)
    jobs = [q.enqueue(QUEUE, "task", i, attempts=2, backoff=backoff) for i in range(n)]
    assert rec.wait(2 * n)
    spacing = []
    for job in jobs:
        first, second = rec.starts(job.id)
        spacing.append(second - first)
    assert min(spacing) >= 0.15 - CLOCK_SLACK
    assert max(spacing) < 0.3 + LATE
    # Without jitter (or with jitter above d) every gap would be >= 300 ms.
    assert statistics.median(spacing) < 0.3
