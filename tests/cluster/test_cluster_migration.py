"""A slot migrates while the KV store and the task queue work on it (issue 7).

The slot moves with the real protocol (``RedisCluster.migrate_slot``): while it is half
moved the source answers ASK for the keys already gone, and once it is moved every node
answers MOVED. Between the steps the test keeps the slot in each state while the load
runs (see make_hook), so each state is really exercised. No exception may reach the
caller, and nothing acknowledged may be lost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import jexkv
from tests.cluster.loads import Load
from tests.helpers import wait_for
from tests.redis_cluster import (
    STEP_DONE,
    MigrationHook,
    RedisCluster,
    key_slot,
    keys_in_slot,
)

ROUNDS_PER_STEP = 10  # load rounds the test waits for in each state of the migration
STEP_TIMEOUT = 20.0  # seconds a state may take to see them (generous: a slow machine)
SPLIT_HOLD = 0.3  # seconds the queue's slot stays in each half-moved state


def other_node(cluster: RedisCluster, port: int) -> int:
    return next(p for p in cluster.ports if p != port)


def make_hook(load: Load, stuck: list, *, multi_key: bool = False) -> MigrationHook:
    """A migrate_slot hook that keeps the slot in each state while the load runs there.

    Single-key commands go through in every state (by ASK while the slot is half moved),
    so the hook waits for the load to make progress in each. A script over several keys
    of the slot (``multi_key``: the queue's) cannot: while some of its keys are on the
    source and some are not, the nodes answer TRYAGAIN, and the client retries for a
    bounded window. So the hook holds each half-moved state ``SPLIT_HOLD`` seconds only,
    as a quick reshard would, and waits for progress once the slot is moved.

    It never raises: an assertion inside migrate_slot would leave the slot half moved
    for the later tests. A state the load did not get through is noted in ``stuck``."""

    def hook(step: str) -> None:
        if multi_key and step != STEP_DONE:
            time.sleep(SPLIT_HOLD)
            return
        rounds = ROUNDS_PER_STEP * (3 if step == STEP_DONE else 1)
        if not load.wait_rounds(rounds, STEP_TIMEOUT):
            stuck.append(f"{step}: {load.rounds} rounds, {load.describe_errors()}")

    return hook


def test_kv_load_goes_on_while_its_slot_migrates(cluster: RedisCluster) -> None:
    slot = key_slot("{kvmig}")
    # Keys with the hash tag, and keys without one that happen to hash to the same slot.
    keys = [f"{{kvmig}}:{i}" for i in range(16)] + keys_in_slot(slot, 4, prefix="kvmig-")
    counter = "{kvmig}:counter"
    assert all(key_slot(key) == slot for key in [*keys, counter])
    source = cluster.owner(slot)
    target = other_node(cluster, source)

    last: dict[str, int] = {}  # key -> its last acknowledged value
    stale: list[str] = []  # reads that did not see the write just acknowledged
    incrs = 0  # acknowledged incr calls

    kv = jexkv.open_kv(cluster.url(), namespace="")  # the keys above are the server's keys

    def step(n: int) -> None:
        nonlocal incrs
        key = keys[n % len(keys)]
        assert kv.set(key, {"n": n}) is True
        last[key] = n
        got = kv.get(key)
        if got != {"n": n}:
            stale.append(f"{key}: wrote {n}, read {got!r}")
        kv.incr(counter)
        incrs += 1

    load = Load("kv", step)
    stuck: list[str] = []
    replies_before = cluster.error_replies()
    try:
        load.start()
        assert load.wait_rounds(2 * len(keys), STEP_TIMEOUT), load.describe_errors()
        moved = cluster.migrate_slot(
            slot, source, target, keys_batch=3, hook=make_hook(load, stuck)
        )
    finally:
        load.stop()
    try:
        assert load.errors == [], load.describe_errors()
        assert stuck == [], stuck
        assert stale == [], stale[:5]
        assert moved == len(keys) + 1  # every key was on the source, and moved
        # The client went both ways: ASK while the slot was half moved, MOVED after.
        replies = cluster.error_replies()
        for code in ("ASK", "MOVED"):
            assert replies.get(code, 0) > replies_before.get(code, 0), (code, replies)
        assert cluster.owner(slot) == target
        # Every acknowledged write reads back with its last value, from the new owner.
        for key, n in last.items():
            assert kv.get(key) == {"n": n}, key
        assert len(last) == len(keys)
        assert kv.get(counter) == incrs
        dst = cluster.client(target)
        assert int(dst.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)) == len(keys) + 1
    finally:
        kv.close()


def test_queue_jobs_run_exactly_once_while_its_slot_migrates(cluster: RedisCluster) -> None:
    # Every key of a queue is "{bull}:<queue>:…": one slot, the slot of "bull".
    slot = key_slot("bull")
    source = cluster.owner(slot)
    target = other_node(cluster, source)

    enqueued: list[str] = []  # ids of the acknowledged enqueues
    ran: Counter[str] = Counter()  # job id -> how many times its handler ran
    lock = threading.Lock()

    def handle(job: jexkv.Job) -> None:
        with lock:
            ran[job.id] += 1

    q = jexkv.open_queue(cluster.url(), prefix="{bull}")
    try:
        q.register_worker("migration", handle, concurrency=2)

        def step(n: int) -> None:
            job = q.enqueue("migration", "job", {"n": n})
            enqueued.append(job.id)

        producer = Load("enqueue", step, interval=0.002)
        stuck: list[str] = []
        moved_before = cluster.error_replies().get("MOVED", 0)
        try:
            producer.start()
            assert producer.wait_rounds(20, STEP_TIMEOUT), producer.describe_errors()
            moved = cluster.migrate_slot(
                slot, source, target, keys_batch=10, hook=make_hook(producer, stuck, multi_key=True)
            )
        finally:
            producer.stop()
        assert producer.errors == [], producer.describe_errors()
        assert stuck == [], stuck
        assert moved > 0  # the queue's keys were on the source, and moved
        assert cluster.error_replies().get("MOVED", 0) > moved_before  # the client was moved
        assert cluster.owner(slot) == target
        assert len(enqueued) == len(set(enqueued))

        def all_ran() -> bool:
            with lock:
                return all(ran[job_id] for job_id in enqueued)

        assert wait_for(all_ran, timeout=30.0), (
            f"{sum(1 for j in enqueued if not ran[j])} of {len(enqueued)} jobs never ran"
        )
        time.sleep(0.5)  # a job run twice would show up now
        with lock:
            twice = {job_id: count for job_id, count in ran.items() if count != 1}
            unknown = set(ran) - set(enqueued)
        assert twice == {}, f"jobs run more than once: {twice}"
        assert unknown == set(), f"jobs that were never acknowledged ran: {unknown}"
        counts = q.counts("migration")
        assert counts["waiting"] == counts["active"] == counts["dead"] == 0, counts
    finally:
        q.close(timeout_ms=5000)
