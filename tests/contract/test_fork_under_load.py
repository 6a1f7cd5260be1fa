"""``os.fork()`` while other threads use a store: the child's store works (README,
"Forking"). 20 children are forked while 4 threads write; each child writes and reads
its own key (and enqueues a job) and must finish; the parent's threads go on."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import jexkv

CHILDREN = 20
CHILD_DEADLINE_S = 30.0  # generous: a child that takes this long is stuck, not slow


def _reap(pids: list[int]) -> dict[int, int]:
    """Exit codes by pid; a child still running at the deadline is killed (code -9)."""
    codes: dict[int, int] = {}
    deadline = time.monotonic() + CHILD_DEADLINE_S
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    for pid in pids:
        if pid not in codes:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            codes[pid] = -9
    return codes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_children_forked_while_threads_write_can_use_the_store(queue_url):
    kv = jexkv.open_kv(queue_url)
    q = jexkv.open_queue(queue_url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                kv.set(f"w{n}", i, ttl_ms=60_000)
                kv.incr(f"count{n}")
                if i % 10 == 0:
                    q.enqueue("forks", "w", {"n": n, "i": i})
                i += 1
                # A steady load, not a tight loop: SQLite gives the write lock to whoever
                # asks first, so unbroken writers would starve any other process.
                time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    pids = []
    try:
        for c in range(CHILDREN):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:  # the child: use both stores, then leave without cleanup
                code = 1
                try:
                    kv.set(f"child{c}", c)
                    job = q.enqueue("forks", "child", {"c": c})
                    code = 0 if kv.get(f"child{c}") == c and q.get_job("forks", job.id) else 3
                finally:
                    os._exit(code)
            pids.append(pid)
        codes = _reap(pids)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    try:
        assert errors == []
        assert sorted(codes.values()) == [0] * CHILDREN, codes
        kv.set("parent", 1)  # the parent's stores still work
        assert kv.get("parent") == 1
    finally:
        q.close(timeout_ms=2000)
        kv.close()
