"""A jexkv queue of a namespace is BullMQ's queue under the prefix ``<prefix>:<namespace>``
(README, "Namespaces"): Node workers, producers and getWorkers() see it there, both ways."""

from __future__ import annotations

import base64
import threading

from tests.helpers import wait_for

NAMESPACE = "tenant1"


def test_a_node_worker_under_the_namespaced_prefix_runs_jexkv_jobs(open_side, open_jexkv):
    side = open_side(f"bull:{NAMESPACE}")
    q = open_jexkv(namespace=NAMESPACE, keep_completed=10)
    job = q.enqueue(side.queue, "send", {"to": "t1"})
    worker = side.start("worker.js")
    worker.wait_event("completed", count=1)
    done = q.get_job(side.queue, job.id)
    assert done is not None and done.state == "completed"
    assert done.result == {"by": "node", "name": "send", "data": {"to": "t1"}}


def test_a_jexkv_worker_of_the_namespace_runs_node_jobs_and_node_lists_it(open_side, open_jexkv):
    side = open_side(f"bull:{NAMESPACE}")
    other = open_side("bull")  # the same queue name without the namespace: another queue
    other.add({"name": "not-mine", "data": {}})
    q = open_jexkv(namespace=NAMESPACE)
    ran: list[str] = []
    done = threading.Event()

    def handle(job):
        ran.append(job.name)
        done.set()

    q.register_worker(side.queue, handle)
    side.add({"name": "mine", "data": {"n": 1}})
    assert done.wait(15)
    assert wait_for(
        lambda: side.inspect()[0]["completed"] == 0 and q.counts(side.queue)["active"] == 0, 15
    )
    assert ran == ["mine"]
    assert other.inspect()[0]["waiting"] == 1

    def workers() -> list[dict]:
        [line] = side.run("workers.js")
        return line["workers"]

    name = f"bull:{NAMESPACE}:" + base64.b64encode(side.queue.encode()).decode()
    assert wait_for(lambda: {w["rawname"] for w in workers()} == {name}, 15)
