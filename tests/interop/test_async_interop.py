"""An async jexkv worker (jexkv.aio, handlers as coroutines on one loop) and a Node BullMQ
Worker on one queue: every job runs exactly once, on one side or the other, and both sides
read the same outcome."""

from __future__ import annotations

import asyncio
import threading
import time

import jexkv.aio
from tests.aio_facade import LoopThread
from tests.helpers import wait_for
from tests.interop.conftest import PREFIX

BURSTS, PER_BURST = 20, 10


def test_an_async_jexkv_worker_and_a_node_worker_share_a_queue(side, interop_url):
    node_worker = side.start("worker.js")
    node_worker.wait_ready()
    loop = LoopThread()
    q = jexkv.aio.open_queue(interop_url, prefix=PREFIX, keep_completed=1000)
    ran: list[str] = []
    lock = threading.Lock()

    async def handle(job):
        with lock:
            ran.append(job.id)
        await asyncio.sleep(0.05)  # busy a while, so the Node worker gets its share
        return {"by": "jexkv", "name": job.name, "data": job.payload}

    try:
        loop.call(lambda: q.register_worker(side.queue, handle, concurrency=10))
        ids: list[str] = []
        for burst in range(BURSTS):
            jobs = [
                {"name": "j", "payload": {"n": burst * PER_BURST + i}} for i in range(PER_BURST)
            ]
            ids += [job.id for job in loop.run(lambda jobs=jobs: q.enqueue_many(side.queue, jobs))]
            time.sleep(0.02)

        def completed() -> int:
            return loop.run(lambda: q.counts(side.queue))["completed"]

        assert wait_for(lambda: completed() == len(ids), timeout=30), completed()
        by_node = [line["id"] for line in node_worker.events("completed")]
        assert sorted(ran + by_node) == sorted(ids)  # each job once, on one side
        assert ran and by_node, (len(ran), len(by_node))
        counts, node_jobs = side.inspect(*ids[:5], by_node[0])
        assert counts["completed"] == len(ids), counts
        assert counts["active"] == counts.get("waiting", 0) == 0, counts
        for job_id in ids[:5]:
            who = "jexkv" if job_id in ran else "node"
            assert node_jobs[job_id]["returnvalue"]["by"] == who
        ours = loop.run(lambda: q.get_job(side.queue, by_node[0]))
        assert ours.state == "completed" and ours.result["by"] == "node"
    finally:
        loop.run(lambda: q.aclose(timeout_ms=2000))
        loop.stop()
