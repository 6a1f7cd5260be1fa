"""Node BullMQ's Queue.add enqueues, a jexkv worker runs the jobs, Node and jexkv agree.

Covers plain, prioritized, delayed, custom-id and attempts+backoff jobs added by Node, what
Node's getJobCounts/getJob/getState and QueueEvents then read of jexkv's work, and Node's
getWorkers listing the jexkv worker's connection.
"""

from __future__ import annotations

import base64
import threading

from tests.helpers import wait_for

DELAY_MS = 800
NODE_STATE = {"completed": "completed", "dead": "failed"}


def test_a_jexkv_worker_runs_node_jobs_and_node_reads_the_outcome(side, open_jexkv):
    name = side.queue
    events = side.start("events.js")
    events.wait_ready()
    ids = side.add(
        {"name": "a1", "data": {"n": 1}},
        {"name": "pA", "data": {"n": 2}, "opts": {"priority": 2}},
        {"name": "pB", "data": {"n": 3}, "opts": {"priority": 1}},
        {"name": "late", "data": {"n": 4}, "opts": {"delay": DELAY_MS}},
        {"name": "custom", "data": {"n": 5}, "opts": {"jobId": "node-custom"}},
        {
            "name": "flaky",
            "data": {"failTimes": 2},
            "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}},
        },
        {
            "name": "doomed",
            "data": {"fail": "always broken"},
            "opts": {"attempts": 2, "backoff": {"type": "exponential", "delay": 50}},
        },
        {"name": "a2", "data": {"n": 6}},
    )
    a1, pa, pb, late, custom, flaky, doomed, a2 = ids
    assert custom == "node-custom"

    calls: list[str] = []
    lock = threading.Lock()

    def handle(job):
        with lock:
            calls.append(job.id)
            tries = calls.count(job.id)
        if tries <= job.payload.get("failTimes", 0):
            raise RuntimeError(f"planned failure {tries}")
        if "fail" in job.payload:
            raise ValueError(job.payload["fail"])
        return {"by": "jexkv", "name": job.name, "payload": job.payload}

    q = open_jexkv(keep_completed=100)
    q.register_worker(name, handle)
    assert wait_for(lambda: q.counts(name)["completed"] == 7 and q.counts(name)["dead"] == 1, 20)

    first_runs = [i for n, i in enumerate(calls) if i not in calls[:n] and i != late]
    assert first_runs == [a1, custom, flaky, doomed, a2, pb, pa]
    assert sorted(calls) == sorted([*ids, flaky, flaky, doomed])

    counts, node_jobs = side.inspect(*ids)
    assert counts == {
        **dict.fromkeys(counts, 0),
        "completed": 7,
        "failed": 1,
    }
    expected_attempts = {flaky: 3, doomed: 2}
    for job_id in ids:
        ours, theirs = q.get_job(name, job_id), node_jobs[job_id]
        assert theirs["state"] == NODE_STATE[ours.state]
        assert theirs["attemptsMade"] == ours.attempts_made == expected_attempts.get(job_id, 1)
        if ours.state == "completed":
            assert theirs["returnvalue"] == ours.result == handle_result(theirs)
        assert theirs["failedReason"] == ours.error
        assert theirs["data"] == ours.payload and theirs["name"] == ours.name
    assert node_jobs[doomed]["state"] == "failed"
    assert node_jobs[doomed]["failedReason"] == "ValueError: always broken"
    assert node_jobs[flaky]["failedReason"] == "RuntimeError: planned failure 2"
    assert node_jobs[late]["processedOn"] >= node_jobs[late]["timestamp"] + DELAY_MS

    # QueueEvents reads jexkv's events: results as JSON, the final failure, no more.
    completed = events.wait_event("completed", count=7)
    assert {line["jobId"]: line["returnvalue"] for line in completed} == {
        job_id: node_jobs[job_id]["returnvalue"] for job_id in ids if job_id != doomed
    }
    assert [line["jobId"] for line in events.wait_event("retries-exhausted")] == [doomed]
    # Every job has finished and its last event was read: retries were "delayed", not "failed".
    failed = [(line["jobId"], line["failedReason"]) for line in events.events("failed")]
    assert failed == [(doomed, "ValueError: always broken")]
    retried = sorted(line["jobId"] for line in events.events("delayed") if line["jobId"] != late)
    assert retried == sorted([flaky, flaky, doomed])


def handle_result(snapshot: dict) -> dict:
    return {"by": "jexkv", "name": snapshot["name"], "payload": snapshot["data"]}


def test_node_lists_the_jexkv_worker_while_it_runs(open_side, open_jexkv):
    side = open_side("interop")  # BullMQ's getWorkers matches on the prefix too
    q = open_jexkv(prefix="interop")
    client_name = "interop:" + base64.b64encode(side.queue.encode()).decode()

    def workers() -> list[dict]:
        [line] = side.run("workers.js")
        return line["workers"]

    assert workers() == []
    q.register_worker(side.queue, lambda job: None)
    assert wait_for(lambda: workers(), 15)
    assert {w["rawname"] for w in workers()} == {client_name}
    assert {w["name"] for w in workers()} == {side.queue}
    q.close(timeout_ms=2000)
    assert wait_for(lambda: workers() == [], 15)
