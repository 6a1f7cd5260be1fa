"""jexkv enqueues, a Node BullMQ Worker runs the jobs, Node QueueEvents watches, jexkv reads.

Covers standard, prioritized, delayed and custom-id jobs (run in BullMQ's order), and
attempts with fixed and exponential backoff (retried, then completed or failed as set).
"""

from __future__ import annotations

from jexkv import Backoff

DELAY_MS = 800


def node_result(job) -> dict:
    """What worker.js returns for a job."""
    return {"by": "node", "name": job.name, "data": job.payload}


def test_a_node_worker_runs_jexkv_jobs_in_order(side, open_jexkv):
    q, name = open_jexkv(keep_completed=100), side.queue
    events = side.start("events.js")
    events.wait_ready()
    s1 = q.enqueue(name, "s1", {"n": 1})
    p3 = q.enqueue(name, "p3", {"n": 2}, priority=3)
    p1 = q.enqueue(name, "p1", {"n": 3}, priority=1)
    late = q.enqueue(name, "late", {"n": 4}, delay_ms=DELAY_MS)
    s2 = q.enqueue(name, "s2", {"n": 5})
    p1b = q.enqueue(name, "p1b", {"n": 6}, priority=1)
    custom = q.enqueue(name, "custom", {"n": 7}, job_id="order-custom")
    every = [s1, p3, p1, late, s2, p1b, custom]
    assert custom.id == "order-custom"

    worker = side.start("worker.js")
    worker.wait_event("completed", count=len(every))
    ran = [line["id"] for line in worker.events("active")]
    # Standard jobs first (first in, first out), then by priority, low first; the delayed job
    # may run once due, so only its delay is checked.
    assert [i for i in ran if i != late.id] == [s1.id, s2.id, custom.id, p1.id, p1b.id, p3.id]
    assert ran.count(late.id) == 1
    assert worker.events("failed") == []

    completed = events.wait_event("completed", count=len(every))
    assert {line["jobId"]: line["returnvalue"] for line in completed} == {
        job.id: node_result(job) for job in every
    }
    counts, snapshots = side.inspect(late.id)
    assert counts["completed"] == len(every)
    assert snapshots[late.id]["processedOn"] >= late.created_at_ms + DELAY_MS

    assert q.counts(name) == {"waiting": 0, "delayed": 0, "active": 0, "completed": 7, "dead": 0}
    for job in every:
        done = q.get_job(name, job.id)
        assert (done.state, done.result, done.attempts_made) == ("completed", node_result(job), 1)
        assert (done.name, done.payload, done.priority) == (job.name, job.payload, job.priority)


def test_a_node_worker_retries_and_fails_jexkv_jobs_as_set(side, open_jexkv):
    q, name = open_jexkv(keep_completed=100), side.queue
    events = side.start("events.js")
    events.wait_ready()
    flaky = q.enqueue(name, "flaky", {"failTimes": 2}, attempts=3, backoff=Backoff.fixed(100))
    doomed = q.enqueue(
        name, "doomed", {"fail": "always broken"}, attempts=2, backoff=Backoff.exponential(50)
    )
    once = q.enqueue(name, "once", {"fail": "no retry"})

    worker = side.start("worker.js")
    events.wait_event("completed")
    exhausted = events.wait_event("retries-exhausted", count=2)
    assert {line["jobId"] for line in exhausted} == {doomed.id, once.id}
    # On the stream a retry is "delayed" (BullMQ's way); "failed" is the final failure.
    failed = events.wait_event("failed", count=2)
    assert {(line["jobId"], line["failedReason"]) for line in failed} == {
        (doomed.id, "always broken"),
        (once.id, "no retry"),
    }
    [completed] = events.events("completed")
    assert (completed["jobId"], completed["returnvalue"]) == (flaky.id, node_result(flaky))
    assert sorted(line["jobId"] for line in events.events("delayed")) == sorted(
        [flaky.id, flaky.id, doomed.id]
    )
    tries = worker.wait_event("failed", count=5)
    assert sorted((line["id"], line["reason"]) for line in tries) == sorted(
        [
            (flaky.id, "planned failure 1"),
            (flaky.id, "planned failure 2"),
            (doomed.id, "always broken"),
            (doomed.id, "always broken"),
            (once.id, "no retry"),
        ]
    )
    worker.wait_event("completed")
    assert len(worker.events("active")) == 3 + 2 + 1

    assert q.counts(name) == {"waiting": 0, "delayed": 0, "active": 0, "completed": 1, "dead": 2}
    done = q.get_job(name, flaky.id)
    assert (done.state, done.result, done.attempts_made) == ("completed", node_result(flaky), 3)
    assert done.backoff == Backoff.fixed(100)
    for job, reason, attempts in ((doomed, "always broken", 2), (once, "no retry", 1)):
        dead = q.get_job(name, job.id)
        assert (dead.state, dead.error, dead.attempts_made) == ("dead", reason, attempts)
        assert dead.traceback and reason in dead.traceback
    assert {job.id for job in q.dead_letters(name)} == {doomed.id, once.id}


def test_a_node_worker_follows_the_keep_settings_of_the_jexkv_producer(side, open_jexkv):
    """keep_completed=0 (the default) and keep_dead=0 become removeOnComplete/removeOnFail."""
    q, name = open_jexkv(keep_dead=0), side.queue
    done = q.enqueue(name, "done", {"n": 1})
    doomed = q.enqueue(name, "doomed", {"fail": "gone"})
    worker = side.start("worker.js")
    worker.wait_event("completed")
    worker.wait_event("failed")
    counts, _ = side.inspect(done.id)
    assert (counts["completed"], counts["failed"]) == (0, 0)
    assert q.get_job(name, done.id) is None and q.get_job(name, doomed.id) is None
