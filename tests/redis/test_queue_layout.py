"""The Redis queue's own promises beyond the contract: BullMQ's key types, scores and fields,
deferred failures, the two-phase stalled check, the worker connection and the eviction warning.

Node BullMQ itself is in tests/interop; these tests read the keys with jexkv's client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import tracemalloc

import pytest

import jexkv
from jexkv.resp import Redis
from tests.helpers import wait_for

DB = 11  # contract suites: 9, tests/processes: 10, tests/interop: 13
QUEUE = "mail"
Q = "bull:" + QUEUE


@pytest.fixture
def q(url):
    queue = jexkv.open_queue(url, keep_completed=10)
    yield queue
    queue.close(timeout_ms=2000)


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def job_hash(redis, job_id: str) -> dict:
    reply = redis.execute_command("HGETALL", f"{Q}:{job_id}")
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    return {text(k): text(v) for k, v in zip(reply[::2], reply[1::2])}


def key_type(redis, name: str) -> str:
    return text(redis.execute_command("TYPE", f"{Q}:{name}"))


def events(redis) -> list:
    """(event, jobId) of every entry of the events stream, oldest first."""
    out = []
    for _entry_id, fields in redis.execute_command("XRANGE", f"{Q}:events", "-", "+"):
        pairs = dict(zip(map(text, fields[::2]), map(text, fields[1::2])))
        out.append((pairs["event"], pairs.get("jobId")))
    return out


def test_each_state_lives_in_the_key_type_bullmq_reads(q, redis):
    q.enqueue(QUEUE, "plain", 1)
    q.enqueue(QUEUE, "urgent", 2, priority=3)
    q.enqueue(QUEUE, "later", 3, delay_ms=60_000)
    assert key_type(redis, "wait") == "list"
    assert key_type(redis, "prioritized") == "zset"
    assert key_type(redis, "delayed") == "zset"
    assert key_type(redis, "marker") == "zset"
    assert key_type(redis, "meta") == "hash"
    assert key_type(redis, "events") == "stream"
    assert key_type(redis, "id") == "string"
    assert text(redis.execute_command("HGET", f"{Q}:meta", "opts.maxLenEvents")) == "10000"

    done = threading.Event()

    def handler(job):
        if job.name == "urgent":
            done.set()
            raise jexkv.Unrecoverable("no")
        return {"ok": job.payload}

    q.register_worker(QUEUE, handler)
    assert done.wait(5)
    assert wait_for(lambda: q.counts(QUEUE)["dead"] == 1 and q.counts(QUEUE)["completed"] == 1)
    assert key_type(redis, "completed") == "zset"
    assert key_type(redis, "failed") == "zset"
    assert key_type(redis, "active") in ("list", "none")  # an empty list is no key at all


def test_job_hash_fields_through_a_run(q, redis):
    job = q.enqueue(QUEUE, "welcome", {"to": "a@b.c"}, attempts=2, backoff=jexkv.Backoff.fixed(5))
    fields = job_hash(redis, job.id)
    assert fields["name"] == "welcome"
    assert json.loads(fields["data"]) == {"to": "a@b.c"}
    assert json.loads(fields["opts"]) == {
        "attempts": 2,
        "backoff": {"type": "fixed", "delay": 5},
        "removeOnComplete": 10,  # the queue's keep_completed, for Node workers
        "jexkv": 1,  # ... marked as jexkv's: a jexkv worker applies its own keep settings
    }
    assert fields["delay"] == "0" and fields["priority"] == "0"
    assert int(fields["timestamp"]) == job.created_at_ms

    runs = []

    def handler(job):
        runs.append(job.attempts_made)
        if len(runs) == 1:
            raise ValueError("first try")
        return "sent"

    q.register_worker(QUEUE, handler)
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 1)
    fields = job_hash(redis, job.id)
    assert runs == [0, 1]
    assert fields["ats"] == "2" and fields["atm"] == "2"
    assert json.loads(fields["returnvalue"]) == "sent"
    assert fields["failedReason"] == "ValueError: first try"
    traces = json.loads(fields["stacktrace"])
    assert len(traces) == 1 and "ValueError: first try" in traces[0]
    assert int(fields["finishedOn"]) >= int(fields["processedOn"]) >= int(fields["timestamp"])
    assert fields["pb"].startswith("jexkv:")
    kinds = [kind for kind, job_id in events(redis) if job_id == job.id]
    assert kinds == ["added", "waiting", "active", "delayed", "waiting", "active", "completed"]


def test_delayed_and_prioritized_scores(q, redis):
    first = q.enqueue(QUEUE, "a", None, delay_ms=60_000)
    due = first.created_at_ms + 60_000
    score = int(float(redis.execute_command("ZSCORE", f"{Q}:delayed", first.id)))
    assert score == due * 4096
    # The marker carries the next due time for idle workers.
    assert int(float(redis.execute_command("ZSCORE", f"{Q}:marker", "1"))) == due
    low = q.enqueue(QUEUE, "b", None, priority=7)
    score = int(float(redis.execute_command("ZSCORE", f"{Q}:prioritized", low.id)))
    assert score >> 32 == 7 and score & 0xFFFFFFFF >= 1


def test_queue_chosen_ids_count_custom_ids_too(q, redis):
    assert q.enqueue(QUEUE, "a", None).id == "1"
    assert q.enqueue(QUEUE, "b", None, job_id="mine").id == "mine"
    assert q.enqueue(QUEUE, "c", None).id == "3"
    assert q.enqueue(QUEUE, "b", None, job_id="mine").id == "mine"
    assert ("duplicated", "mine") in events(redis)


def test_priority_past_bullmq_limit_is_refused_and_nothing_written(q, redis):
    with pytest.raises(ValueError, match="priority"):
        q.enqueue_many(QUEUE, [{"name": "ok"}, {"name": "too high", "priority": 2**21 + 1}])
    assert redis.execute_command("EXISTS", f"{Q}:id", f"{Q}:wait", f"{Q}:events") == 0


def test_a_deferred_failure_is_failed_at_fetch_without_running(q, redis):
    job = q.enqueue(QUEUE, "doomed", None, attempts=5)
    redis.execute_command("HSET", f"{Q}:{job.id}", "defa", "job stalled more than allowable limit")
    ran = []
    q.register_worker(QUEUE, ran.append)
    assert wait_for(lambda: q.counts(QUEUE)["dead"] == 1)
    dead = q.get_job(QUEUE, job.id)
    assert ran == []
    assert dead.state == "dead" and dead.error == "job stalled more than allowable limit"
    assert "defa" not in job_hash(redis, job.id)


def test_stalled_check_marks_then_recovers_after_the_lock_is_gone(url, redis):
    from jexkv.redis.queue import RedisQueueBackend

    backend = RedisQueueBackend(Redis.from_url(url))
    try:
        q = jexkv.open_queue(url)
        job = q.enqueue(QUEUE, "x", None)
        q.close()
        [(claimed, _token)] = backend.fetch(QUEUE, 100, 1)
        assert claimed.id == job.id and claimed.attempts_made == 0
        assert backend.recover_stalled(QUEUE, 1, 1, None) == 0  # marks the active job
        assert {text(m) for m in redis.execute_command("SMEMBERS", f"{Q}:stalled")} == {job.id}
        assert wait_for(lambda: redis.execute_command("EXISTS", f"{Q}:{job.id}:lock") == 0)
        time.sleep(0.01)  # past the 1 ms check interval
        assert backend.recover_stalled(QUEUE, 1, 1, None) == 1
        fields = job_hash(redis, job.id)
        assert fields["stc"] == "1" and "defa" not in fields
        again = backend.get(QUEUE, job.id)
        assert again.state == "waiting" and again.attempts_made == 1  # the lost run counts
        assert ("stalled", job.id) in events(redis)
    finally:
        backend.close()


def test_idle_workers_block_on_the_marker_named_as_bullmq_workers(q, redis):
    q.register_worker(QUEUE, lambda job: None, concurrency=4)

    def blocked() -> list:
        clients = text(redis.execute_command("CLIENT", "LIST")).splitlines()
        return [c for c in clients if " name=bull:bWFpbA== " in c and "cmd=bzpopmin" in c]

    assert wait_for(lambda: len(blocked()) == 1)  # one connection per queue and process


def test_an_evicting_server_gets_a_warning(url, redis, caplog):
    before = redis.execute_command("CONFIG", "GET", "maxmemory-policy")
    before = list(before.values())[0] if isinstance(before, dict) else before[1]
    redis.execute_command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="jexkv"):
            with jexkv.open_queue(url) as queue:
                queue.counts(QUEUE)
        assert any("allkeys-lru" in r.getMessage() for r in caplog.records)
    finally:
        redis.execute_command("CONFIG", "SET", "maxmemory-policy", before)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jexkv"):
        with jexkv.open_queue(url) as queue:
            queue.counts(QUEUE)
    assert not [r for r in caplog.records if "maxmemory" in r.getMessage()]


def test_bullmq_global_concurrency_caps_active_jobs_across_workers(q, redis):
    """meta.concurrency (BullMQ's setGlobalConcurrency) holds for jexkv's workers too."""
    redis.execute_command("HSET", f"{Q}:meta", "concurrency", 1)
    lock = threading.Lock()
    running, most = [0], [0]

    def handler(job):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    q.enqueue_many(QUEUE, [{"name": "t", "payload": i} for i in range(12)])
    q.register_worker(QUEUE, handler, concurrency=4)
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 10)  # keep_completed=10
    assert wait_for(lambda: q.counts(QUEUE)["active"] == q.counts(QUEUE)["waiting"] == 0)
    assert most[0] == 1


def test_bullmq_global_rate_limit_spreads_jobs_over_windows(q, redis):
    """meta.max jobs per meta.duration ms (BullMQ's setGlobalRateLimit)."""
    redis.execute_command("HSET", f"{Q}:meta", "max", 2, "duration", 400)
    starts: list = []
    q.enqueue_many(QUEUE, [{"name": "t", "payload": i} for i in range(6)])
    q.register_worker(QUEUE, lambda job: starts.append(time.monotonic()), concurrency=4)
    assert wait_for(lambda: len(starts) == 6, timeout=10)
    # Six jobs at two per 400 ms window need three windows: the last starts >= 800 ms in.
    assert starts[-1] - starts[0] >= 0.8 - 0.05


def test_names_ids_and_payloads_with_json_specials_round_trip(q, redis):
    names = ['quote " and \\ back', "ünï €", "tab\tnew\nline", "😀"]
    jobs = q.enqueue_many(
        QUEUE,
        [{"name": n, "payload": {"n": n}, "job_id": f"id-{n}"} for n in names]
        + [{"name": n, "payload": [n]} for n in names],
    )
    for job, name in zip(jobs, names + names):
        fields = job_hash(redis, job.id)
        assert fields["name"] == name
        again = q.get_job(QUEUE, job.id)
        assert (again.name, again.payload) == (name, job.payload)
    assert [job.id for job in jobs[:4]] == [f"id-{n}" for n in names]
    assert [int(job.id) for job in jobs[4:]] == [5, 6, 7, 8]


def test_retries_exhausted_only_when_the_attempts_are_used_up(url, redis):
    with jexkv.open_queue(url, keep_dead=0) as q:
        early = q.enqueue(QUEUE, "gives up early", None, attempts=3)
        last = q.enqueue(QUEUE, "last try", None, attempts=1)

        def handler(job):
            if job.id == early.id:
                raise jexkv.Unrecoverable("stop")
            raise ValueError("no")

        q.register_worker(QUEUE, handler)
        assert wait_for(lambda: ("failed", last.id) in events(redis))
        assert wait_for(lambda: ("failed", early.id) in events(redis))
        exhausted = [job_id for kind, job_id in events(redis) if kind == "retries-exhausted"]
        assert exhausted == [last.id]
        assert q.get_job(QUEUE, early.id) is None  # keep_dead=0: not kept


def test_a_job_id_naming_a_queue_key_is_refused_and_the_queue_still_works(q, redis):
    q.enqueue(QUEUE, "first", 1)
    before = {name: key_type(redis, name) for name in ("wait", "meta", "id", "events", "marker")}
    for job_id in ("wait", "meta", "id", "events", "marker", "active", "completed", "pc"):
        with pytest.raises(ValueError, match="queue's own keys"):
            q.enqueue(QUEUE, "task", None, job_id=job_id)
        assert q.get_job(QUEUE, job_id) is None
    assert {name: key_type(redis, name) for name in before} == before
    assert before["wait"] == "list" and before["meta"] == "hash" and before["id"] == "string"
    done = threading.Event()
    q.register_worker(QUEUE, lambda job: done.set() if job.name == "second" else None)
    q.enqueue(QUEUE, "second", 2)
    assert done.wait(10)
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 2)


def test_payloads_are_stored_as_utf8_json_and_lone_surrogates_escaped(q, redis):
    payload = {"text": "ünï € 😀", "lone": "\ud800"}
    job = q.enqueue(QUEUE, "task", payload)
    data = redis.execute_command("HGET", f"{Q}:{job.id}", "data")
    raw = data if isinstance(data, bytes) else data.encode()
    assert raw == '{"text":"ünï € 😀","lone":"\\ud800"}'.encode()
    assert json.loads(raw) == payload
    assert q.get_job(QUEUE, job.id).payload == payload


def test_a_prefix_with_a_lone_surrogate_is_refused_at_open(url, redis):
    with pytest.raises(ValueError, match="prefix .* lone surrogate"):
        jexkv.open_queue(url, prefix="bull\ud800")
    assert redis.execute_command("DBSIZE") == 0


def test_a_payload_over_a_mib_of_utf8_round_trips(q, redis):
    payload = {"text": "é€😀x" * 150_000, "lone": "\udfff"}
    job = q.enqueue(QUEUE, "task", payload)
    assert len(redis.execute_command("HGET", f"{Q}:{job.id}", "data")) > 1 << 20
    assert q.get_job(QUEUE, job.id).payload == payload
    assert [j.payload for j in q.jobs(QUEUE)] == [payload]


def test_reading_a_large_payload_takes_about_twice_its_text(q, redis):
    value = "ü€😀a" * 500_000  # 5 MB of UTF-8, 8 MB as a str
    job = q.enqueue(QUEUE, "task", value)
    size = len(redis.execute_command("HGET", f"{Q}:{job.id}", "data"))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        assert q.get_job(QUEUE, job.id).payload == value
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # the reply (1x), the text (1.6x) and the value (1.6x); a one-shot decode adds 4x more
    assert peak < 6 * size


def test_a_worker_reads_a_large_payload_at_about_twice_its_text(q, redis):
    value = "ü€😀a" * 500_000  # 5 MB of UTF-8, 8 MB as a str
    job = q.enqueue(QUEUE, "task", value)
    size = len(redis.execute_command("HGET", f"{Q}:{job.id}", "data"))
    started, seen = threading.Event(), []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]

        def handler(job):
            seen.append((job.payload == value, tracemalloc.get_traced_memory()[1] - base))
            started.set()

        q.register_worker(QUEUE, handler)
        assert started.wait(10)
    finally:
        tracemalloc.stop()
    [(same, peak)] = seen
    assert same
    assert peak < 6 * size  # a one-shot decode of the claim alone peaks near 6x
