"""Per-job BullMQ options between Node BullMQ 6.7.0 and jexkv workers.

Node's removeOnComplete/removeOnFail decide what a jexkv worker keeps of a Node job; Node's
deduplication keys are released when a jexkv worker finishes the job; a job Node retried
(job.retry(), Bull Board's "Retry") after its last attempt gets one more run on a jexkv worker,
reported as "attempt 2 of 2"; what jexkv writes for Backoff.exponential(max_ms=…), which Node
reads without the cap.
"""

from __future__ import annotations

import logging
import threading

from jexkv import Backoff
from tests.helpers import wait_for
from tests.interop.conftest import PREFIX


def idle(q, name: str) -> bool:
    counts = q.counts(name)
    return counts["waiting"] + counts["delayed"] + counts["active"] == 0


def test_a_jexkv_worker_honours_node_remove_on_options(side, open_jexkv):
    name = side.queue
    counted = side.add(*({"name": "counted", "opts": {"removeOnComplete": 1}} for _ in range(3)))
    kept, gone, dead_kept, dead_gone, plain, plain_dead = side.add(
        {"name": "kept", "opts": {"removeOnComplete": False}},
        {"name": "gone", "opts": {"removeOnComplete": True}},
        {"name": "dead-kept", "data": {"fail": "x"}, "opts": {"removeOnFail": False}},
        {"name": "dead-gone", "data": {"fail": "y"}, "opts": {"removeOnFail": True}},
        {"name": "plain"},
        {"name": "plain-dead", "data": {"fail": "z"}},
    )

    def handle(job):
        if "fail" in job.payload:
            raise RuntimeError(job.payload["fail"])
        return {"by": "jexkv"}

    q = open_jexkv(keep_completed=0, keep_dead=0)  # delete what the job does not say to keep
    q.register_worker(name, handle)
    assert wait_for(lambda: idle(q, name), 20)
    q.close(timeout_ms=2000)

    counts, jobs = side.inspect(*counted, kept, gone, dead_kept, dead_gone, plain, plain_dead)
    assert (counts["completed"], counts["failed"]) == (2, 1)
    assert [jobs[i] is None for i in counted] == [True, True, False]  # newest 1 kept
    assert jobs[kept]["state"] == "completed" and jobs[kept]["returnvalue"] == {"by": "jexkv"}
    assert jobs[dead_kept]["state"] == "failed"
    assert jobs[dead_kept]["failedReason"] == "RuntimeError: x"
    assert jobs[gone] is None and jobs[dead_gone] is None
    assert jobs[plain] is None and jobs[plain_dead] is None  # no option: the worker's


def test_a_node_deduplication_id_is_free_again_once_a_jexkv_worker_finished(side, open_jexkv, raw):
    name = side.queue
    spec = {"name": "once", "opts": {"deduplication": {"id": "nightly"}}}
    [first] = side.add(spec)
    assert side.add(spec) == [first]  # while it lives: dropped, as BullMQ deduplicates
    q = open_jexkv(keep_completed=10)
    q.register_worker(name, lambda job: "done")
    assert wait_for(lambda: q.counts(name)["completed"] == 1, 20)
    assert raw.execute_command("EXISTS", f"{PREFIX}:{name}:de:nightly") == 0
    [second] = side.add(spec)
    assert second != first
    assert wait_for(lambda: q.counts(name)["completed"] == 2, 20)
    counts, jobs = side.inspect(first, second)
    assert counts["completed"] == 2
    assert jobs[first]["state"] == jobs[second]["state"] == "completed"


def test_a_job_node_retried_after_its_last_attempt_runs_once_more(side, open_jexkv, caplog):
    name = side.queue
    [job_id] = side.add({"name": "broken", "data": {"fail": "still"}})
    runs: list[tuple[int, int]] = []

    def handle(job):
        runs.append((job.attempts_made, job.attempts))
        raise RuntimeError(job.payload["fail"])

    q = open_jexkv()
    with caplog.at_level(logging.ERROR, logger="jexkv"):
        q.register_worker(name, handle)
        assert wait_for(lambda: q.counts(name)["dead"] == 1, 20)
        assert side.run("retry.js", job_id) == [{"retried": job_id}]
        _, jobs = side.inspect(job_id)
        assert (jobs[job_id]["state"], jobs[job_id]["attemptsMade"]) in (
            ("waiting", 1),
            ("active", 1),
            ("failed", 2),  # the jexkv worker was quick
        )
        assert wait_for(lambda: len(runs) == 2 and q.counts(name)["dead"] == 1, 20)
        assert wait_for(lambda: idle(q, name), 20)
    lines = [r.getMessage() for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "attempt 1 of 1:" in lines[0] and "attempt 2 of 2:" in lines[1], lines
    assert runs == [(0, 1), (1, 2)]
    dead = q.get_job(name, job_id)
    assert (dead.state, dead.attempts_made, dead.attempts) == ("dead", 2, 2)
    _, jobs = side.inspect(job_id)
    assert (jobs[job_id]["state"], jobs[job_id]["attemptsMade"]) == ("failed", 2)


def test_the_backoff_cap_jexkv_writes_and_who_honours_it(side, open_jexkv):
    name = side.queue
    q = open_jexkv(keep_completed=10)
    # A jexkv worker honours the cap: an uncapped first retry would wait 100 s.
    capped = q.enqueue(
        name, "capped", {"failTimes": 1}, attempts=2, backoff=Backoff.exponential(100_000, 20)
    )
    _, jobs = side.inspect(capped.id)
    assert jobs[capped.id]["opts"]["backoff"] == {
        "type": "exponential",
        "delay": 100_000,
        "max": 20,
    }
    assert q.get_job(name, capped.id).backoff == Backoff.exponential(100_000, 20)
    runs: list[int] = []

    def handle(job):
        runs.append(job.attempts_made)
        if job.attempts_made < job.payload["failTimes"]:
            raise RuntimeError("planned failure")
        return "ok"

    q.register_worker(name, handle)
    assert wait_for(lambda: q.counts(name)["completed"] == 1, 20)
    assert runs == [0, 1]
    q.close(timeout_ms=2000)

    # Node reads the same opts: type and delay (its own exponential formula); it has no cap
    # field and ignores "max", so it retries this job after 30 ms, not 10.
    producer = open_jexkv(keep_completed=10)
    node_run = producer.enqueue(
        name, "node", {"failTimes": 1}, attempts=2, backoff=Backoff.exponential(30, 10)
    )
    worker = side.start("worker.js")
    [line] = worker.wait_event("completed")
    assert line["id"] == node_run.id
    assert [e["id"] for e in worker.events("failed")] == [node_run.id]
    _, jobs = side.inspect(node_run.id)
    assert jobs[node_run.id]["opts"]["backoff"] == {"type": "exponential", "delay": 30, "max": 10}
    assert (jobs[node_run.id]["state"], jobs[node_run.id]["attemptsMade"]) == ("completed", 2)


def test_a_node_keep_last_if_active_add_runs_after_a_jexkv_worker_finished(side, open_jexkv, raw):
    name = side.queue
    dedup = {"deduplication": {"id": "sync", "keepLastIfActive": True}}
    [first] = side.add({"name": "sync", "data": {"n": 1}, "opts": dedup})
    started, release = threading.Event(), threading.Event()
    seen: list[tuple[str, int]] = []

    def handle(job):
        seen.append((job.id, job.payload["n"]))
        if job.id == first:
            started.set()
            assert release.wait(20)
        return job.payload["n"]

    q = open_jexkv(keep_completed=10)
    q.register_worker(name, handle)
    assert started.wait(20)
    # While it runs, Node keeps the latest add of that id for later (Q:dn:sync).
    assert side.add({"name": "sync", "data": {"n": 2}, "opts": dedup}) == [first]
    assert side.add({"name": "sync", "data": {"n": 3}, "opts": dedup}) == [first]
    assert raw.execute_command("EXISTS", f"{PREFIX}:{name}:dn:sync") == 1
    release.set()
    assert wait_for(lambda: q.counts(name)["completed"] == 2 and idle(q, name), 20)
    assert [n for _, n in seen] == [1, 3]
    second = seen[1][0]
    assert second != first
    assert raw.execute_command("EXISTS", f"{PREFIX}:{name}:dn:sync") == 0
    assert raw.execute_command("EXISTS", f"{PREFIX}:{name}:de:sync") == 0  # released again
    counts, jobs = side.inspect(first, second)
    assert counts["completed"] == 2
    assert jobs[second]["data"] == {"n": 3} and jobs[second]["returnvalue"] == 3
