"""A queue paused from Node (``queue.pause()``) is not fetched by a running jexkv worker until
Node resumes it (``queue.resume()``)."""

from __future__ import annotations

import threading
import time

from tests.helpers import wait_for

HELD_FOR_S = 1.0


def test_a_jexkv_worker_waits_while_node_pauses_the_queue(side, open_jexkv):
    q, name = open_jexkv(), side.queue
    ran: list[str] = []
    lock = threading.Lock()

    def handle(job):
        with lock:
            ran.append(job.id)
        return {"ran": job.name}

    q.register_worker(name, handle)
    warm = q.enqueue(name, "warm", {})  # the worker runs before the pause
    assert wait_for(lambda: ran == [warm.id], 10)

    assert side.run("pause.js", "pause") == [{"paused": True}]
    held = [q.enqueue(name, f"held{i}", {"i": i}) for i in range(3)]
    held += [q.enqueue(name, "held-prio", {}, priority=1)]
    node_ids = side.add({"name": "from-node", "data": {}})
    time.sleep(HELD_FOR_S)
    assert ran == [warm.id]
    assert q.counts(name)["waiting"] == 5 and q.counts(name)["active"] == 0
    counts, _ = side.inspect()
    assert (counts["waiting"], counts["prioritized"], counts["active"]) == (4, 1, 0)

    assert side.run("pause.js", "resume") == [{"paused": False}]
    expected = [job.id for job in held[:3]] + node_ids + [held[3].id]
    assert wait_for(lambda: len(ran) == 6, 15)
    assert ran == [warm.id, *expected]
    assert q.counts(name)["waiting"] == 0
