"""Per-job BullMQ options a jexkv worker honours, on one Redis and on a Redis Cluster.

A Node (or Python) BullMQ producer's ``removeOnComplete``/``removeOnFail`` decide what a jexkv
worker keeps of that job; jexkv's own jobs (their opts marked ``"jexkv": 1``) and jobs without
such an option follow the worker's ``keep_completed``/``keep_dead``. A job's deduplication key
(``Q:de:<deid>``) is released as BullMQ releases it; a job retried by BullMQ (Bull Board,
``job.retry()``, which keeps ``atm``) gets one more run, shown as ``attempts_made + 1`` attempts.
Node-written jobs are made here by rewriting a jexkv job's hash as BullMQ's ``Queue.add`` writes
it (tests/interop runs the real Node BullMQ).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import jexkv
from jexkv.resp.connect import client_for_url
from jexkv.resp.surface import RedisClient
from tests.helpers import wait_for

DB = 12  # contract suites: 9, tests/processes: 10, test_queue_layout: 11, tests/interop: 13
QUEUE = "opts"


class Where:
    """One server under test: its URL, the queue prefix to use there and a raw client."""

    def __init__(self, url: str, prefix: str, client: RedisClient) -> None:
        self.url, self.prefix, self.client = url, prefix, client
        self.base = f"{prefix}:{QUEUE}"
        self.queues: list[jexkv.TaskQueue] = []

    def open(self, **options: Any) -> jexkv.TaskQueue:
        queue = jexkv.open_queue(self.url, prefix=self.prefix, **options)
        self.queues.append(queue)
        return queue

    def cmd(self, *args: Any) -> Any:
        return self.client.execute_command(*args)

    def node_job(
        self, producer: jexkv.TaskQueue, opts: dict[str, Any], *, deid: str | None = None
    ) -> str:
        """A job as BullMQ's Queue.add writes it: ``opts`` as given (no jexkv mark), and with
        ``deid`` the field and the key ``Q:de:<deid>`` BullMQ's deduplication sets."""
        job = producer.enqueue(QUEUE, "node", {"n": 1}, attempts=opts.get("attempts", 1))
        self.cmd("HSET", f"{self.base}:{job.id}", "opts", json.dumps(opts))
        if deid is not None:
            self.cmd("HSET", f"{self.base}:{job.id}", "deid", deid)
            self.cmd("SET", f"{self.base}:de:{deid}", job.id)
        return job.id

    def exists(self, suffix: str) -> bool:
        return int(self.cmd("EXISTS", f"{self.base}:{suffix}")) == 1

    def opts(self, job_id: str) -> dict[str, Any]:
        raw = self.cmd("HGET", f"{self.base}:{job_id}", "opts")
        return json.loads(raw)  # type: ignore[no-any-return]


@pytest.fixture(params=["redis", "redis-cluster"])
def where(request) -> Iterator[Where]:
    if request.param == "redis":
        url, prefix = request.getfixturevalue("redis_server").url(db=DB), "bull"
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.reset()
        url, prefix = cluster.url(), "{bull}"
    client = client_for_url(url, {})
    if request.param == "redis":
        client.execute_command("FLUSHDB")
    spot = Where(url, prefix, client)
    yield spot
    for queue in reversed(spot.queues):
        queue.close(timeout_ms=2000)
    client.close()


def idle(queue: jexkv.TaskQueue) -> bool:
    counts = queue.counts(QUEUE)  # one read: a job may move from active to waiting meanwhile
    return counts["waiting"] + counts["delayed"] + counts["active"] == 0


def run_all(where: Where, handler=None, **options: Any) -> jexkv.TaskQueue:
    """A worker with ``options`` that runs every job of the queue, then stops."""
    worker = where.open(**options)
    worker.register_worker(QUEUE, handler or (lambda job: {"ok": job.id}))
    assert wait_for(lambda: idle(worker), 10)
    worker.close(timeout_ms=2000)
    return worker


# -- item 5: removeOnComplete / removeOnFail ---------------------------------------------


def test_node_remove_on_complete_false_is_kept_by_a_worker_that_deletes(where):
    producer = where.open()
    kept = where.node_job(producer, {"attempts": 1, "removeOnComplete": False})
    plain = where.node_job(producer, {"attempts": 1})
    run_all(where, keep_completed=0)
    job = producer.get_job(QUEUE, kept)
    assert job is not None and job.state == "completed" and job.result == {"ok": kept}
    assert producer.get_job(QUEUE, plain) is None  # no option: the worker's keep_completed=0


def test_node_remove_on_complete_true_and_a_count_trim_a_worker_that_keeps(where):
    producer = where.open()
    gone = where.node_job(producer, {"removeOnComplete": True})
    counted = [where.node_job(producer, {"removeOnComplete": 2}) for _ in range(4)]
    run_all(where, keep_completed=100)
    assert producer.get_job(QUEUE, gone) is None
    states = [producer.get_job(QUEUE, i) for i in counted]
    assert sum(job is not None for job in states) == 2
    assert producer.counts(QUEUE)["completed"] == 2


def test_node_remove_on_complete_age_and_count(where):
    producer = where.open()
    old = where.node_job(producer, {"removeOnComplete": False})
    run_all(where, keep_completed=100)
    # That job finished two hours ago: an {age: 3600} job finishing now removes it.
    where.cmd("ZADD", f"{where.base}:completed", 1, old)
    fresh = [where.node_job(producer, {"removeOnComplete": {"age": 3600, "count": 2}})]
    fresh += [where.node_job(producer, {"removeOnComplete": {"age": 3600}}) for _ in range(2)]
    run_all(where, keep_completed=100)
    assert producer.get_job(QUEUE, old) is None and not where.exists(old)
    assert all(producer.get_job(QUEUE, i) is not None for i in fresh)


def test_node_remove_on_fail_is_honoured_both_ways(where):
    producer = where.open()
    kept = where.node_job(producer, {"attempts": 1, "removeOnFail": False})
    gone = where.node_job(producer, {"attempts": 2, "removeOnFail": True})

    def fail(job):
        raise RuntimeError("broken")

    run_all(where, fail, keep_dead=0)
    job = producer.get_job(QUEUE, kept)
    assert job is not None and job.state == "dead" and job.error == "RuntimeError: broken"
    assert producer.get_job(QUEUE, gone) is None
    # keep_dead=None (all) keeps a job without the option, not one with removeOnFail: true.
    late = where.node_job(producer, {"attempts": 1, "removeOnFail": True})
    plain = where.node_job(producer, {"attempts": 1})
    run_all(where, fail)
    assert producer.get_job(QUEUE, late) is None
    assert producer.get_job(QUEUE, plain).state == "dead"


def test_a_jexkv_job_follows_the_worker_keep_settings_not_the_producers(where):
    """jexkv's producer writes its keep settings for Node workers and marks them; a jexkv
    worker applies its own keep_completed / keep_dead to such a job."""
    producer = where.open(keep_completed=5, keep_dead=0)
    deleted = producer.enqueue(QUEUE, "a", 1).id
    assert where.opts(deleted)["removeOnComplete"] == 5
    assert where.opts(deleted)["removeOnFail"] is True
    assert where.opts(deleted)["jexkv"] == 1
    run_all(where, keep_completed=0)
    assert producer.get_job(QUEUE, deleted) is None

    producer0 = where.open()  # keep_completed=0 -> removeOnComplete: true
    kept = producer0.enqueue(QUEUE, "b", 2).id
    dead = producer.enqueue(QUEUE, "c", 3, attempts=1).id

    def handle(job):
        if job.name == "c":
            raise ValueError("no")
        return "done"

    run_all(where, handle, keep_completed=10)  # keep_dead None: all
    assert producer.get_job(QUEUE, kept).state == "completed"
    assert producer.get_job(QUEUE, dead).state == "dead"


# -- item 6: deduplication keys ----------------------------------------------------------


def test_the_deduplication_key_is_released_when_the_job_finishes(where):
    producer = where.open()
    done = where.node_job(producer, {"de": {"id": "d-done"}}, deid="d-done")
    died = where.node_job(producer, {"de": {"id": "d-died"}, "attempts": 1}, deid="d-died")
    other = where.node_job(producer, {"de": {"id": "d-other"}}, deid="d-other")
    where.cmd("SET", f"{where.base}:de:d-other", "someone-else")  # no longer this job's
    throttled = where.node_job(producer, {"de": {"id": "d-ttl", "ttl": 60000}}, deid="d-ttl")
    where.cmd("PEXPIRE", f"{where.base}:de:d-ttl", 60000)  # BullMQ's throttle: kept for ttl

    def handle(job):
        if job.id == died:
            raise RuntimeError("no")
        return 1

    run_all(where, handle, keep_completed=10)
    assert producer.get_job(QUEUE, done).state == "completed"
    assert producer.get_job(QUEUE, died).state == "dead"
    assert not where.exists("de:d-done") and not where.exists("de:d-died")
    assert where.exists("de:d-other") and where.exists("de:d-ttl")
    assert producer.get_job(QUEUE, other) is not None
    assert producer.get_job(QUEUE, throttled) is not None


def test_the_deduplication_key_is_released_when_the_job_is_deleted_at_once(where):
    producer = where.open()
    where.node_job(producer, {"de": {"id": "d0"}}, deid="d0")
    run_all(where, keep_completed=0)
    assert not where.exists("de:d0")


def test_purge_dead_releases_a_deduplication_key_left_behind(where):
    producer = where.open()
    dead = where.node_job(producer, {"de": {"id": "d-old"}, "attempts": 1}, deid="d-old")

    def fail(job):
        raise RuntimeError("no")

    run_all(where, fail)
    where.cmd("SET", f"{where.base}:de:d-old", dead)  # as an older worker left it
    where.cmd("SET", f"{where.base}:dn:d-old", "next")
    assert producer.purge_dead(QUEUE) == 1
    assert not where.exists("de:d-old") and not where.exists("dn:d-old")


@pytest.mark.parametrize("outcome", ["completed", "dead"])
def test_a_next_job_bullmq_kept_for_the_finished_one_is_added(where, outcome):
    """BullMQ's keepLastIfActive: an add made while the job ran waits in Q:dn:<id>."""
    producer = where.open()
    de = {"id": "k", "keepLastIfActive": True}
    first = where.node_job(producer, {"attempts": 1, "de": de}, deid="k")
    where.cmd(
        "HSET", f"{where.base}:dn:k", "name", "next", "data", json.dumps({"n": 2}),
        "opts", json.dumps({"attempts": 1, "de": de, "priority": 3}), "jid", "next-1",
    )  # fmt: skip
    seen: list[str] = []

    def handle(job):
        seen.append(job.id)
        if job.id == first and outcome == "dead":
            raise RuntimeError("no")
        return job.payload

    run_all(where, handle, keep_completed=10)
    assert seen == [first, "next-1"]
    assert producer.get_job(QUEUE, first).state == outcome
    later = producer.get_job(QUEUE, "next-1")
    assert (later.state, later.name, later.result, later.priority) == (
        "completed", "next", {"n": 2}, 3,
    )  # fmt: skip
    assert not where.exists("dn:k") and not where.exists("de:k")


# -- item 8: a job BullMQ retried keeps its attempt counter ------------------------------


def bullmq_retry(where: Where, job_id: str) -> None:
    """What BullMQ's job.retry() (reprocessJob) does to a failed job: atm and ats stay."""
    where.cmd("ZREM", f"{where.base}:failed", job_id)
    where.cmd("HDEL", f"{where.base}:{job_id}", "finishedOn", "processedOn", "failedReason")
    where.cmd("LPUSH", f"{where.base}:wait", job_id)
    where.cmd("ZADD", f"{where.base}:marker", 0, "0")


def test_a_job_retried_by_bullmq_gets_one_more_run_reported_consistently(where, caplog):
    producer = where.open()
    job_id = producer.enqueue(QUEUE, "flaky", {}, attempts=1).id
    runs: list[tuple[int, int]] = []
    lock = threading.Lock()

    def handle(job):
        with lock:
            runs.append((job.attempts_made, job.attempts))
        raise RuntimeError("still broken")

    with caplog.at_level(logging.ERROR, logger="jexkv"):
        run_all(where, handle)
        dead = producer.get_job(QUEUE, job_id)
        assert (dead.state, dead.attempts_made, dead.attempts) == ("dead", 1, 1)
        bullmq_retry(where, job_id)
        waiting = producer.get_job(QUEUE, job_id)
        assert (waiting.state, waiting.attempts_made, waiting.attempts) == ("waiting", 1, 2)
        run_all(where, handle)
    assert runs == [(0, 1), (1, 2)]
    lines = [r.getMessage() for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(lines) == 2
    assert "failed on attempt 1 of 1:" in lines[0]
    assert "failed on attempt 2 of 2:" in lines[1]  # not "2 of 1", and no "will retry"
    final = producer.get_job(QUEUE, job_id)
    assert (final.state, final.attempts_made, final.attempts) == ("dead", 2, 2)
    assert producer.counts(QUEUE)["waiting"] == 0


def test_a_job_retried_by_bullmq_that_succeeds(where):
    producer = where.open()
    job_id = producer.enqueue(QUEUE, "flaky", {}, attempts=2).id
    seen: list[tuple[int, int]] = []

    def handle(job):
        seen.append((job.attempts_made, job.attempts))
        if len(seen) <= 2:
            raise RuntimeError("not yet")
        return "ok"

    run_all(where, handle, keep_completed=10)
    bullmq_retry(where, job_id)
    run_all(where, handle, keep_completed=10)
    assert seen == [(0, 2), (1, 2), (2, 3)]
    done = producer.get_job(QUEUE, job_id)
    assert (done.state, done.attempts_made, done.attempts, done.result) == ("completed", 3, 3, "ok")
