"""Schedules shared with Node BullMQ 6.7 (its job-scheduler layout): a jexkv schedule is
listed by Node's getJobSchedulers() and run by Node workers; a Node upsertJobScheduler is
run by jexkv workers; Node and jexkv workers on one scheduled queue make one job per tick."""

from __future__ import annotations

import json
import threading
import time

from tests.helpers import wait_for

EVERY_MS = 200


def ran_ticks(ids: list[str]) -> list[int]:
    return sorted(int(job_id.rsplit(":", 1)[1]) for job_id in ids)


def assert_one_job_per_tick(ticks: list[int], every_ms: int) -> None:
    """Each tick once, on one beat; none missed once a worker ran (the first tick's job may
    have waited for the first worker: the ticks it missed meanwhile are skipped, not made)."""
    assert len(ticks) == len(set(ticks)), f"a tick ran twice: {ticks}"
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert all(gap % every_ms == 0 for gap in gaps), f"off the beat: {gaps}"
    assert set(gaps[1:]) <= {every_ms}, f"ticks missed while workers ran: {gaps}"


def test_node_lists_and_runs_a_jexkv_schedule(side, open_jexkv):
    q = open_jexkv()
    made = q.schedule(side.queue, "digest", "sendDigest", {"kind": "daily"}, every_ms=EVERY_MS)
    q.schedule(side.queue, "nightly", "report", None, cron="0 3 * * *", tz="Europe/Berlin")
    listed = side.run("schedulers.js", "list")[0]["schedulers"]
    by_key = {s["key"]: s for s in listed}
    assert set(by_key) == {"digest", "nightly"}, listed
    assert by_key["digest"]["every"] == EVERY_MS and by_key["digest"]["name"] == "sendDigest"
    assert by_key["digest"]["template"]["data"] == {"kind": "daily"}
    nightly = by_key["nightly"]
    assert (nightly["pattern"], nightly["tz"]) == ("0 3 * * *", "Europe/Berlin")
    assert by_key["nightly"]["next"] == q.schedules(side.queue)[1].next_run_at_ms
    assert by_key["digest"]["next"] >= made.next_run_at_ms  # its job may have run already

    worker = side.start("worker.js")
    worker.wait_event("completed", count=5)
    q.unschedule(side.queue, "digest")
    ticks = ran_ticks([line["id"] for line in worker.events("completed")])
    assert_one_job_per_tick(ticks, EVERY_MS)
    assert all(line["result"]["data"] == {"kind": "daily"} for line in worker.events("completed"))


def test_jexkv_workers_run_a_node_scheduler(side, open_jexkv):
    side.run(
        "schedulers.js", "upsert", "node-every",
        json.dumps({"repeat": {"every": EVERY_MS}, "name": "fromNode", "data": {"n": 1},
                    "opts": {"attempts": 2}}),
    )  # fmt: skip
    q = open_jexkv()
    ran: list[str] = []
    lock = threading.Lock()

    def handle(job):
        with lock:
            ran.append(job.id)
        return {"by": "jexkv", "data": job.payload}

    q.register_worker(side.queue, handle)
    assert wait_for(lambda: len(ran) >= 6, timeout=10), ran
    [schedule] = q.schedules(side.queue)
    assert (schedule.id, schedule.name, schedule.every_ms) == ("node-every", "fromNode", EVERY_MS)
    assert schedule.payload == {"n": 1} and schedule.attempts == 2
    assert schedule.runs >= 6
    q.unschedule(side.queue, "node-every")
    assert side.run("schedulers.js", "list")[0]["schedulers"] == []
    assert_one_job_per_tick(ran_ticks(ran), EVERY_MS)


def test_node_and_jexkv_workers_together_make_one_job_per_tick(side, open_jexkv):
    q = open_jexkv()
    q.schedule(side.queue, "shared", "tick", None, every_ms=EVERY_MS)
    ran: list[str] = []
    lock = threading.Lock()

    def handle(job):
        with lock:
            ran.append(job.id)
        time.sleep(0.01)

    worker = side.start("worker.js")
    worker.wait_ready()
    q.register_worker(side.queue, handle, concurrency=2)
    time.sleep(3)
    q.unschedule(side.queue, "shared")
    time.sleep(0.3)
    by_node = [line["id"] for line in worker.events("completed")]
    ticks = ran_ticks(ran + by_node)
    assert ran and by_node, (len(ran), len(by_node))
    assert len(ticks) >= 10
    assert_one_job_per_tick(ticks, EVERY_MS)


def test_jexkv_workers_run_a_node_cron_scheduler_with_seconds(side, open_jexkv):
    side.run(
        "schedulers.js", "upsert", "node-cron",
        json.dumps({"repeat": {"pattern": "*/1 * * * * *", "tz": "UTC"}, "name": "everySecond",
                    "data": {"n": 2}, "opts": {}}),
    )  # fmt: skip
    q = open_jexkv()
    ran: list[str] = []
    q.register_worker(side.queue, lambda job: ran.append(job.id))
    assert wait_for(lambda: len(ran) >= 3, timeout=10), ran
    q.unschedule(side.queue, "node-cron")
    ticks = ran_ticks(ran)
    assert all(tick % 1000 == 0 for tick in ticks), ticks
    assert_one_job_per_tick(ticks, 1000)
    listed = side.run("schedulers.js", "list")[0]["schedulers"]
    assert listed == []
