"""The peers of the queue benchmark's throughput table: huey (memory, SQLite, Redis),
persist-queue, rq (4 SimpleWorker processes) and Node BullMQ (benchmarks/node/bench.js). Each one
imports its package when it runs, so a missing peer is only skipped. What a contender class does:
see _queue_throughput."""

import os
import signal
import sys
import threading

import _node
from _queue_setup import (
    DB_BULLMQ,
    DB_HUEY,
    DB_RQ,
    QUEUE,
    REDIS,
    TASK,
    WORKERS,
    flushdb,
    start_child,
    stop_child,
)
from _redis import HOST

RQ_MAX_N = 1_000  # rq processes a few hundred jobs/s: it runs on at most this many jobs


class HueyQueue:
    """huey's own consumer with 4 worker threads, started in-process (what ``huey_consumer -w 4
    -k thread`` runs). Consumer.start() installs signal handlers; close() puts the old ones back."""

    requires = "huey"
    SIGNALS = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]

    def __init__(self, directory, counter):
        self.counter = counter
        self.huey = self.make_huey(directory)
        self.task = self.huey.task(name=TASK)(self.noop)
        self.consumer = None
        self.saved = {s: signal.getsignal(getattr(signal, s)) for s in self.SIGNALS}

    def noop(self):
        self.counter.hit()

    def enqueue(self, n):
        task = self.task
        for _ in range(n):
            task()

    def drain(self):
        self.consumer = self.huey.create_consumer(workers=WORKERS, worker_type="thread")
        self.consumer.start()
        self.counter.wait(self.name)

    def check(self, n):
        pending = self.huey.pending_count()
        if self.counter.count != n or pending:
            raise RuntimeError(f"{self.name}: {self.counter.count:,} runs of {n:,}, {pending} left")

    def close(self):
        try:
            if self.consumer is not None:
                self.consumer.stop(graceful=True)
            self.huey.storage.close()
        finally:
            for s, handler in self.saved.items():
                signal.signal(getattr(signal, s), handler)


class HueyMemory(HueyQueue):
    name = "huey MemoryHuey"

    def make_huey(self, directory):
        from huey import MemoryHuey

        return MemoryHuey("bench")


class HueySQLite(HueyQueue):
    name = "huey SqliteHuey"

    def make_huey(self, directory):
        from huey import SqliteHuey

        return SqliteHuey("bench", filename=os.path.join(directory, "huey.db"))


class HueySQLiteNoFsync(HueyQueue):
    """Not a target: SqliteHuey's default keeps SQLite's synchronous=FULL, an fsync per commit,
    where jexkv uses synchronous=NORMAL in WAL mode (no fsync per commit, durable across a crash
    of the process but not of the OS). fsync=False (synchronous=OFF) shows huey without that
    cost; it is less durable than jexkv."""

    name = "huey SqliteHuey fsync=False (ref.)"

    def make_huey(self, directory):
        from huey import SqliteHuey

        return SqliteHuey("bench", filename=os.path.join(directory, "huey.db"), fsync=False)


class HueyRedis(HueyQueue):
    """RedisHuey with its defaults (a blocking BRPOP dequeue; no result kept for None)."""

    name = "huey RedisHuey"
    requires = ("huey", "redis")
    needs_server = True

    def make_huey(self, directory):
        from huey import RedisHuey

        flushdb(DB_HUEY)
        return RedisHuey("bench", host=HOST, port=REDIS["port"], db=DB_HUEY)

    def close(self):
        try:
            super().close()
        finally:
            self.huey.storage.pool.disconnect()


class PersistQueueAck:
    """SQLiteAckQueue with a connection per thread (multithreading=True); 4 threads get/ack
    until the queue is empty (every job was put before they start)."""

    name = "persist-queue SQLiteAckQueue"
    requires = "persistqueue"
    package = "persist-queue"

    def __init__(self, directory, counter):
        import persistqueue

        self.counter = counter
        self.empty = persistqueue.Empty
        self.q = persistqueue.SQLiteAckQueue(os.path.join(directory, "pq"), multithreading=True)

    def enqueue(self, n):
        put = self.q.put
        for _ in range(n):
            put(TASK)

    def work(self):
        get, ack, hit, empty = self.q.get, self.q.ack, self.counter.hit, self.empty
        while True:
            try:
                item = get(block=False, raw=True)
            except empty:
                return
            hit()
            ack(id=item["pqid"])

    def drain(self):
        threads = [threading.Thread(target=self.work) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.counter.wait(self.name)

    def check(self, n):
        acked, size = self.q.acked_count(), self.q.size
        if self.counter.count != n or acked != n or size:
            raise RuntimeError(f"{self.name}: {self.counter.count:,} runs, {acked:,} acked")

    def close(self):
        self.q.close()


def rq_noop():
    """The rq job. rq imports it by name in its worker processes, which run queue.py and so
    import this module too (see rq_worker_process): it is enqueued as "_queue_peers.rq_noop"."""


def rq_worker_process(where):
    """The child side of RQSimpleWorker: one SimpleWorker, built (imports, connection) before the
    parent's clock starts; says "ready", waits for a line on stdin, works in burst mode (until
    the queue is empty, then returns) and says "done". rq's default logging (INFO, lines per
    job) writes to stdout: stdout is moved to stderr, which the parent sends to a file, and the
    two words go out on the original stdout. queue.py's main() has run stdlib_queue_check."""
    import redis
    import rq

    say = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    port, db = map(int, where.split(":"))
    connection = redis.Redis(host=HOST, port=port, db=db)
    worker = rq.SimpleWorker([rq.Queue(QUEUE, connection=connection)], connection=connection)
    say.write("ready\n")
    say.flush()
    if sys.stdin.readline().strip() == "go":
        worker.work(burst=True)
        sys.stdout.flush()
        say.write("done\n")
        say.flush()


class RQSimpleWorker:
    """rq's way: 4 worker processes running SimpleWorker (no fork per job) in burst mode, what
    ``rq worker --burst --worker-class rq.SimpleWorker`` runs; rq workers are processes (its job
    timeouts use SIGALRM), not threads. They are started and have imported rq before the drain is
    timed; the drain ends when all four have returned from work(burst=True)."""

    name = "rq SimpleWorker"
    requires = ("rq", "redis")
    needs_server = True
    max_n = RQ_MAX_N

    def __init__(self, directory, counter):
        import redis
        import rq

        flushdb(DB_RQ)
        self.connection = redis.Redis(host=HOST, port=REDIS["port"], db=DB_RQ)
        self.q = rq.Queue(QUEUE, connection=self.connection)
        self.log = open(os.path.join(directory, "rq-workers.log"), "w")
        self.children = []
        where = f"{REDIS['port']}:{DB_RQ}"
        for _ in range(WORKERS):
            self.children.append(start_child("--rq-worker", where, stderr=self.log))
        for child in self.children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{self.name}: a worker process did not start: {self.tail()}")

    def tail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-2000:]

    def enqueue(self, n):
        enqueue = self.q.enqueue
        for _ in range(n):
            enqueue("_queue_peers.rq_noop")

    def drain(self):
        for child in self.children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in self.children:
            if child.stdout.readline().strip() != "done":
                raise RuntimeError(f"{self.name}: a worker process failed: {self.tail()}")

    def check(self, n):
        left, finished = self.q.count, self.q.finished_job_registry.count
        failed = self.q.failed_job_registry.count
        if left or failed or finished != n:
            raise RuntimeError(f"{self.name}: {finished:,} finished of {n:,}, {failed} failed")

    def close(self):
        try:
            for child in self.children:
                stop_child(child)
                child.stdout.close()
        finally:
            self.log.close()
            self.connection.close()


class NodeBullMQ:
    """benchmarks/node/bench.js (BullMQ as tests/interop/node/package-lock.json pins it):
    Queue.add one job at a time, then one Worker with concurrency 4; the script times both
    parts itself and reports the
    job counts. BullMQ's defaults: completed jobs are kept. It warms up on 500 untimed jobs of
    another queue first (a fresh node process per round, where the Python contenders run warm)."""

    name = "Node BullMQ"
    needs_server = True

    @staticmethod
    def unavailable():
        try:
            _node.node_modules()
        except _node.NodeUnavailable as e:
            return str(e)
        return None

    def __init__(self, directory, counter):
        flushdb(DB_BULLMQ)
        self.result = None

    def run(self, n):
        """(enqueue seconds, drain seconds), as the Node script measured them."""
        self.result = _node.run_bullmq(REDIS["port"], DB_BULLMQ, n, WORKERS, host=HOST)
        return self.result["enqueue_s"], self.result["drain_s"]

    def check(self, n):
        counts = self.result["counts"]
        left = sum(counts[state] for state in ("waiting", "active", "delayed", "failed"))
        if self.result["n"] != n or counts["completed"] != n or left:
            raise RuntimeError(f"{self.name}: {n:,} jobs, counts {counts}")

    def close(self):
        pass
