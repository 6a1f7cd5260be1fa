"""The TaskQueue contract (README, "The task queue") on every adapter: job ids.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import re

import pytest

from tests.contract.queue_helpers import (
    HANDLER_WAIT,
    NO_JOBS,
    QUEUE,
    STATES,
    Recorder,
    counts,
    drained,
    state_of,
)
from tests.helpers import wait_for


@pytest.mark.parametrize("state", STATES)
def test_job_id_dedupe_in_every_kept_state(open_queue_on_same_backend, make_event, state):
    q = open_queue_on_same_backend(keep_completed=5)
    started, release = make_event(), make_event()

    def then(job):
        if job.payload == "fail":
            raise ValueError("boom")
        if job.payload == "hold":
            started.set()
            release.wait(HANDLER_WAIT)
        return "ok"

    rec = Recorder(then)
    payload = {"active": "hold", "dead": "fail"}.get(state, "x")
    delay_ms = 60_000 if state == "delayed" else 0
    first = q.enqueue(QUEUE, "task", payload, job_id="dup-1", delay_ms=delay_ms)
    assert first.id == "dup-1"
    if state in ("active", "completed", "dead"):
        q.register_worker(QUEUE, rec)
        assert wait_for(lambda: state_of(q, "dup-1") == state)
    before = counts(q)
    assert before[state] == 1

    again = q.enqueue(QUEUE, "other-name", "other payload", job_id="dup-1", priority=3)
    assert again.id == "dup-1"
    assert again.name == "task"
    assert again.payload == payload
    assert again.state == state
    assert counts(q) == before
    assert q.get_job(QUEUE, "dup-1").payload == payload

    release.set()
    if state == "active":
        assert wait_for(lambda: state_of(q, "dup-1") == "completed")
        assert rec.count() == 1
    assert rec.count() <= 1


def test_job_id_dedupe_in_enqueue_many(q):
    q.enqueue(QUEUE, "task", "original", job_id="dup-1")
    jobs = q.enqueue_many(
        QUEUE,
        [
            {"name": "task", "payload": "new"},
            {"name": "task", "payload": "ignored", "job_id": "dup-1"},
        ],
    )
    assert [j.payload for j in jobs] == ["new", "original"]
    assert jobs[1].id == "dup-1"
    assert counts(q) == {**NO_JOBS, "waiting": 2}


def test_job_id_reusable_after_completed_job_is_not_kept(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "first", job_id="once")
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, "once") is None and drained(q))
    again = q.enqueue(QUEUE, "task", "second", job_id="once")
    assert again.id == "once"
    assert again.payload == "second"
    assert rec.wait(2)
    assert rec.payloads() == ["first", "second"]


@pytest.mark.parametrize("job_id", ["123", "0", "a:b", ":", "queue:1", ""])
def test_invalid_job_id_refused(q, job_id):
    with pytest.raises(ValueError):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert counts(q) == NO_JOBS


@pytest.mark.parametrize("job_id", [5, b"abc", ["a"]])
def test_non_str_job_id_refused(q, job_id):
    with pytest.raises((TypeError, ValueError)):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert counts(q) == NO_JOBS


@pytest.mark.parametrize("job_id", ["order-1", "1a", "a1", "12.5", "x", "ünïcödé 1"])
def test_custom_job_ids_round_trip(q, job_id):
    job = q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert job.id == job_id
    assert q.get_job(QUEUE, job_id).id == job_id


def test_queue_chosen_ids_are_distinct_increasing_decimal_strings(q):
    # Ids are per queue (get_job takes the queue), like BullMQ's per-queue counter.
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(30)]
    jobs += q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(10)])
    jobs.append(q.enqueue(QUEUE, "task", None, job_id="custom"))
    jobs.append(q.enqueue(QUEUE, "task", None))
    ids = [job.id for job in jobs if job.id != "custom"]
    assert all(isinstance(i, str) and re.fullmatch("[0-9]+", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    # never reused once the jobs are gone
    q.register_worker(QUEUE, Recorder())
    assert wait_for(lambda: drained(q))
    assert int(q.enqueue(QUEUE, "task", None).id) > max(int(i) for i in ids)
