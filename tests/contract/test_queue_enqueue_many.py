"""The TaskQueue contract (README, "The task queue") on every adapter: enqueue_many.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import pytest

import jexkv
from tests.contract.queue_helpers import (
    NO_JOBS,
    QUEUE,
    Recorder,
    counts,
)


def test_enqueue_many_returns_jobs_in_order(q):
    items = [{"name": f"n{i}", "payload": {"i": i}} for i in range(5)]
    items.append({"name": "custom", "payload": None, "job_id": "my-id"})
    jobs = q.enqueue_many(QUEUE, items)
    assert [j.name for j in jobs] == [item["name"] for item in items]
    assert [j.payload for j in jobs] == [item["payload"] for item in items]
    assert jobs[-1].id == "my-id"
    assert len({j.id for j in jobs}) == len(jobs)
    for job in jobs:
        assert q.get_job(QUEUE, job.id).payload == job.payload
    assert counts(q) == {**NO_JOBS, "waiting": 6}
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(6)
    assert [j.id for j in rec.jobs] == [j.id for j in jobs]


def test_enqueue_many_applies_each_items_options(q):
    jobs = q.enqueue_many(
        QUEUE,
        [
            {"name": "a", "payload": 1, "delay_ms": 60_000},
            {"name": "b", "payload": 2, "priority": 4, "attempts": 3, "backoff": 10},
            {"name": "c", "payload": 3},
        ],
    )
    assert [j.state for j in jobs] == ["delayed", "waiting", "waiting"]
    assert [(j.priority, j.attempts) for j in jobs] == [(0, 1), (4, 3), (0, 1)]
    assert counts(q) == {**NO_JOBS, "waiting": 2, "delayed": 1}
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(2)
    assert rec.payloads() == [3, 2]


def test_enqueue_many_empty(q):
    assert q.enqueue_many(QUEUE, []) == []
    assert counts(q) == NO_JOBS


BAD_ITEMS = {
    "set payload": ({"name": "t", "payload": {1, 2}}, jexkv.SerializationError),
    "negative priority": ({"name": "t", "payload": None, "priority": -1}, ValueError),
    "digit job_id": ({"name": "t", "payload": None, "job_id": "12"}, ValueError),
    "empty name": ({"name": "", "payload": None}, ValueError),
    "delay True": ({"name": "t", "payload": None, "delay_ms": True}, ValueError),
    "unknown key": ({"name": "t", "payload": None, "colour": "red"}, (TypeError, ValueError)),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_enqueue_many_is_all_or_nothing(q, case):
    bad, error = BAD_ITEMS[case]
    good = {"name": "t", "payload": "ok"}
    with pytest.raises(error):
        q.enqueue_many(QUEUE, [good, dict(good), bad, dict(good)])
    assert counts(q) == NO_JOBS
    assert len(q.enqueue_many(QUEUE, [good, dict(good)])) == 2
    assert counts(q) == {**NO_JOBS, "waiting": 2}
