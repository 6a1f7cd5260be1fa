"""jexkv waits for jobs a Node BullMQ Worker finishes: the result or the error comes from
BullMQ's events stream, also when the Node worker removes the job as it finishes (jexkv's
default keep_completed=0 asks it to)."""

from __future__ import annotations

import threading

import pytest

import jexkv.aio
from tests.aio_facade import LoopThread
from tests.interop.conftest import PREFIX


def waiting(fn):
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    thread.start()
    return thread, box


def test_sync_wait_for_sees_a_node_worker_finish_and_remove_jobs(side, open_jexkv):
    q, name = open_jexkv(), side.queue
    ok = q.enqueue(name, "ok", {"n": 1})
    bad = q.enqueue(name, "bad", {"fail": "card declined"}, attempts=2, backoff=0)
    waiters = [waiting(lambda j=j: q.wait_for(name, j.id, timeout_ms=20_000)) for j in (ok, bad)]
    worker = side.start("worker.js")
    for thread, _ in waiters:
        thread.join(25)
        assert not thread.is_alive()
    done, dead = (box["value"] for _, box in waiters)
    assert done.state == "completed"
    assert done.result == {"by": "node", "name": "ok", "data": {"n": 1}}
    assert (done.name, done.payload) == ("ok", {"n": 1})
    assert (dead.state, dead.error) == ("dead", "card declined")
    assert worker.events("failed")  # Node ran both attempts
    assert q.get_job(name, ok.id) is None  # Node removed it: removeOnComplete from keep 0


@pytest.mark.parametrize("waiters", [1, 20])
def test_async_wait_for_sees_a_node_worker_finish(side, interop_url, waiters):
    loop = LoopThread()
    q = jexkv.aio.open_queue(interop_url, prefix=PREFIX)
    try:
        job = loop.run(lambda: q.enqueue(side.queue, "ok", {"n": 2}))
        side.start("worker.js")

        async def many():
            import asyncio

            waits = [q.wait_for(side.queue, job.id, timeout_ms=20_000) for _ in range(waiters)]
            return await asyncio.gather(*waits)

        results = loop.run(many)
        assert {r.state for r in results} == {"completed"}
        assert all(r.result == {"by": "node", "name": "ok", "data": {"n": 2}} for r in results)
    finally:
        loop.run(lambda: q.aclose(timeout_ms=2000))
        loop.stop()
