"""A worker killed mid-job (SIGKILL) has its job recovered by the other side's stalled check.

jexkv -> Node: a jexkv worker process dies holding a job; a Node Worker's stalled check puts
it back and the Node worker completes it. Node -> jexkv: the reverse. Either way the job hash
ends as docs/redis-layout.md says (stc = 1 stall, ats = 2 runs started, atm = 1 finished), and
both sides read the same counters.
"""

from __future__ import annotations

from tests.helpers import wait_for
from tests.interop.conftest import job_hash

LEASE_MS = 1000
NODE_CHECKS = {"WORKER_LOCK_MS": LEASE_MS, "WORKER_STALLED_MS": LEASE_MS}


def assert_counters(raw, side, q, job_id: str, result: dict) -> None:
    fields = job_hash(raw, side.queue, job_id)
    assert (fields["stc"], fields["ats"], fields["atm"]) == ("1", "2", "1")
    assert "defa" not in fields
    _, node_jobs = side.inspect(job_id)
    node = node_jobs[job_id]
    assert node["state"] == "completed" and node["returnvalue"] == result
    assert (node["stalledCounter"], node["attemptsStarted"], node["attemptsMade"]) == (1, 2, 1)
    ours = q.get_job(side.queue, job_id)
    assert ours.state == "completed" and ours.result == result
    assert ours.stall_count == 1
    assert ours.attempts_made == 2  # the finished run and the stalled one


def test_a_node_worker_recovers_the_job_of_a_killed_jexkv_worker(side, open_jexkv, raw):
    q = open_jexkv(keep_completed=100)
    job = q.enqueue(side.queue, "stuck", {"hangOn": "jexkv"})
    python_worker = side.start_jexkv_worker(lease_ms=LEASE_MS)
    python_worker.wait_ready()
    python_worker.wait_event("active")
    python_worker.kill()
    assert q.get_job(side.queue, job.id).state == "active"

    node_worker = side.start("worker.js", **NODE_CHECKS)
    [done] = node_worker.wait_event("completed")
    assert done["id"] == job.id
    [rerun] = node_worker.events("active")
    assert (rerun["stalledCounter"], rerun["attemptsStarted"]) == (1, 2)
    assert [line["id"] for line in node_worker.wait_event("stalled")] == [job.id]
    result = {"by": "node", "name": "stuck", "data": {"hangOn": "jexkv"}}
    assert_counters(raw, side, q, job.id, result)


def test_a_jexkv_worker_recovers_the_job_of_a_killed_node_worker(side, open_jexkv, raw):
    [job_id] = side.add({"name": "stuck", "data": {"hangOn": "node"}})
    node_worker = side.start("worker.js", **NODE_CHECKS)
    node_worker.wait_event("active")
    node_worker.kill()
    events = side.start("events.js")
    events.wait_ready()

    q = open_jexkv(lease_ms=LEASE_MS, keep_completed=100)
    q.register_worker(side.queue, lambda job: {"by": "jexkv", "stalls": job.stall_count})
    assert wait_for(lambda: q.get_job(side.queue, job_id).state == "completed", 20)
    assert [line["jobId"] for line in events.wait_event("stalled")] == [job_id]
    assert_counters(raw, side, q, job_id, {"by": "jexkv", "stalls": 1})
