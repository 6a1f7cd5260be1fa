"""A KV store and a task queue opened on one URL never touch each other's data.

Run on every adapter: on memory and SQLite they hold separate tables or spaces; on the
Redis adapters the KV store keeps its keys under its own namespace (``jexkv:`` when none
is given), so ``keys()`` and ``clear()`` never reach a queue's ``bull:…`` keys.
"""

from __future__ import annotations

import pytest

import jexkv

QUEUE = "emails"


@pytest.fixture
def shared(queue_url):
    """A queue holding three kept jobs, and a default KV store, on one backend: both
    opened on the queue's URL, whose query string may hold queue options (a KV store
    leaves those to the queue)."""
    queue = jexkv.open_queue(queue_url, keep_completed=100)
    jobs = [queue.enqueue(QUEUE, "send", {"n": n}) for n in range(3)]
    kv = jexkv.open_kv(queue_url)
    yield kv, queue, jobs
    kv.close()
    queue.close(timeout_ms=2000)


def test_kv_keys_and_clear_never_see_a_queue(shared):
    kv, queue, jobs = shared
    kv.set("token", 1)
    assert list(kv.keys()) == ["token"]
    assert kv.clear() == 1
    assert list(kv.keys()) == []
    assert queue.counts(QUEUE)["waiting"] == 3
    assert [queue.get_job(QUEUE, job.id).payload for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    # The queue's id counter survived too: a new job gets a new id.
    assert queue.enqueue(QUEUE, "send").id not in {job.id for job in jobs}


def test_kv_of_a_namespace_never_sees_a_queue_either(shared, queue_url):
    _kv, queue, _jobs = shared
    with jexkv.open_kv(queue_url, namespace="app:") as kv:
        kv.set("k", 1)
        assert kv.clear() == 1
    assert queue.counts(QUEUE)["waiting"] == 3
