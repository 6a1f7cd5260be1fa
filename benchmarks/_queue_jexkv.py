"""The jexkv contenders of the queue benchmark's throughput table: ``jexkv.open_queue`` on
memory://, a SQLite file and redis://, driven with 4 worker threads in this process. What a
contender class does: see _queue_throughput."""

import time

import _report  # noqa: F401  (fixes sys.path before jexkv: see _queue_setup)
from _queue_setup import (
    DB_JEXKV,
    DRAIN_TIMEOUT_S,
    QUEUE,
    TASK,
    WORKERS,
    flushdb,
    redis_url,
    sqlite_url,
)

import jexkv


class JexkvQueue:
    def __init__(self, url, counter):
        self.counter = counter
        self.q = jexkv.open_queue(url)

    def enqueue(self, n):
        enqueue = self.q.enqueue
        for _ in range(n):
            enqueue(QUEUE, TASK, None)

    def handler(self, job):
        self.counter.hit()

    def drain(self):
        self.q.register_worker(QUEUE, self.handler, concurrency=WORKERS)
        self.counter.wait(self.name)
        counts = self.q.counts
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:  # the last handlers have run; wait until their jobs are marked done too
            c = counts(QUEUE)
            if c["waiting"] == c["active"] == c["delayed"] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: jobs left after the drain: {c}")
            time.sleep(0.0002)

    def check(self, n):
        c = self.q.counts(QUEUE)
        if self.counter.count != n or c["dead"] or c["waiting"] or c["active"] or c["delayed"]:
            raise RuntimeError(f"{self.name}: {self.counter.count:,} runs of {n:,}, counts {c}")

    def close(self):
        self.q.close()


class JexkvMemory(JexkvQueue):
    name = "jexkv memory://"

    def __init__(self, directory, counter):
        super().__init__("memory://", counter)


class JexkvSQLite(JexkvQueue):
    name = "jexkv sqlite (file)"

    def __init__(self, directory, counter):
        super().__init__(sqlite_url(directory), counter)


class JexkvRedis(JexkvQueue):
    """``jexkv.open_queue(url)`` with its defaults (completed jobs deleted: keep_completed=0)."""

    name = "jexkv redis://"
    needs_server = True

    def __init__(self, directory, counter):
        flushdb(DB_JEXKV)
        super().__init__(redis_url(DB_JEXKV), counter)
