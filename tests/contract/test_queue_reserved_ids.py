"""The TaskQueue contract (README, "The task queue") on every adapter: job ids reserved as
the names of a queue's own keys, and lone surrogates in names, ids, payloads and errors.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import pytest

from tests.contract.queue_helpers import (
    NO_JOBS,
    QUEUE,
    WAIT,
    counts,
)
from tests.helpers import wait_for

# Issue 13: a custom job id may not be the name of one of the queue's own keys (on Redis the
# job's hash would overwrite that key), on every adapter alike.
# jexkv's (jexkv/redis/scripts.py KEY_NAMES, its Lua) and BullMQ 6's (QueueKeys, scripts).
QUEUE_KEY_NAMES = [
    "active", "completed", "de", "delay", "delayed", "dn", "events", "failed", "id", "limiter",
    "marker", "meta", "metrics", "paused", "pc", "priority", "prioritized", "repeat", "stalled",
    "stalled-check", "wait", "waiting", "waiting-children",
]  # fmt: skip


@pytest.mark.parametrize("job_id", QUEUE_KEY_NAMES)
def test_job_id_naming_a_queue_key_is_refused(q, job_id):
    with pytest.raises(ValueError, match="queue's own keys"):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    with pytest.raises(ValueError, match="queue's own keys"):
        q.enqueue_many(QUEUE, [{"name": "task"}, {"name": "task", "job_id": job_id}])
    assert counts(q) == NO_JOBS
    assert q.get_job(QUEUE, job_id) is None
    assert q.retry_dead(QUEUE, job_id) == 0
    job = q.enqueue(QUEUE, "task", "after")
    assert q.get_job(QUEUE, job.id).payload == "after"
    assert counts(q) == {**NO_JOBS, "waiting": 1}


@pytest.mark.parametrize("job_id", ["wait-1", "Wait", "events2", "my-meta", "de-1", "ids"])
def test_job_ids_near_queue_key_names_are_accepted(q, job_id):
    assert q.enqueue(QUEUE, "task", None, job_id=job_id).id == job_id
    assert q.get_job(QUEUE, job_id).id == job_id


@pytest.mark.parametrize("job_id", ["a:lock", "1:logs", "x:"])
def test_get_and_retry_of_an_id_no_job_can_have(q, job_id):
    q.enqueue(QUEUE, "task", None)
    assert q.get_job(QUEUE, job_id) is None
    assert q.retry_dead(QUEUE, job_id) == 0


LONE = "a\ud800b"


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.enqueue(QUEUE, "task", None, job_id=LONE),
        lambda q: q.enqueue(QUEUE, LONE, None),
        lambda q: q.enqueue(LONE, "task", None),
        lambda q: q.enqueue_many(QUEUE, [{"name": "task"}, {"name": "t", "job_id": LONE}]),
        lambda q: q.get_job(QUEUE, LONE),
        lambda q: q.retry_dead(QUEUE, LONE),
        lambda q: q.counts(LONE),
        lambda q: q.jobs(LONE),
    ],
    ids=["job_id", "name", "queue", "enqueue_many", "get_job", "retry_dead", "counts", "jobs"],
)
def test_lone_surrogate_in_names_and_ids_is_refused(q, call):
    with pytest.raises(ValueError, match="lone surrogate"):
        call(q)
    assert counts(q) == NO_JOBS


def test_namespace_with_a_lone_surrogate_is_refused(open_queue_on_same_backend):
    with pytest.raises(ValueError, match="namespace .* lone surrogate"):
        open_queue_on_same_backend(namespace="ns\udc80")


def test_payload_and_result_with_lone_surrogates_round_trip(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)
    payload = {"s": "x\udfffy", "l": ["\ud800"], "\udbff": "k", "text": "ünï € 😀"}
    job = q.enqueue(QUEUE, "task", payload, job_id="lone-1")
    assert job.payload == payload
    assert q.get_job(QUEUE, "lone-1").payload == payload
    q.register_worker(QUEUE, lambda job: [job.payload, "\udc00"])

    def completed():
        job = q.get_job(QUEUE, "lone-1")
        return job is not None and job.state == "completed"

    assert wait_for(completed, timeout=10)
    final = q.get_job(QUEUE, "lone-1")
    assert final.payload == payload
    assert final.result == [payload, "\udc00"]


def test_an_error_message_with_a_lone_surrogate_is_kept_escaped(q):
    def handle(job):
        raise RuntimeError("bad byte \udc80 in input")  # e.g. a filename read with surrogateescape

    q.register_worker(QUEUE, handle)
    job = q.enqueue(QUEUE, "task")
    assert wait_for(lambda: q.counts(QUEUE)["dead"] == 1, timeout=WAIT)
    dead = q.get_job(QUEUE, job.id)
    assert dead.error == "RuntimeError: bad byte \\udc80 in input"
    assert "bad byte \\udc80 in input" in dead.traceback
    assert q.counts(QUEUE) == {**NO_JOBS, "dead": 1}  # the worker lives on
