"""Task-queue benchmark: jexkv's queue adapters side by side with huey, persist-queue, rq and
Node BullMQ.

    python benchmarks/queue.py              # full run, rewrites the queue section of BENCHMARKS.md
    python benchmarks/queue.py --no-write   # print only
    python benchmarks/queue.py --quick      # smoke run (small n, never writes)

Throughput: every contender enqueues N no-op jobs one call at a time, then drains them with 4
worker threads in the same process; the drain is timed from starting the workers until every job
is done (the handler counts under a lock and sets an Event at N; jexkv is also waited on until
``counts()`` shows nothing waiting or active). Best of a few rounds, interleaved across
contenders, with a fresh store in a fresh temporary folder each round. Each peer is driven the way
its documentation drives it, with its default settings. A peer that is not installed is skipped
with a note.

The Redis contenders share one throwaway redis-server (benchmarks/_redis.py, a free 127.0.0.1
port), each on a db of its own that is emptied (FLUSHDB) before each round: jexkv redis://, huey
RedisHuey, rq (4 SimpleWorker processes in burst mode, on fewer jobs: it is slow) and Node BullMQ
(benchmarks/node/bench.js through benchmarks/_node.py: one Worker with concurrency 4; the script
times itself). They are skipped when redis-server, their Python package or node/npm is missing.

Then jexkv alone: ``enqueue_many`` of N jobs in one call; the pickup latency of an idle worker
(enqueue -> handler start, in-process and from a worker in another process on the same SQLite
file or Redis server); the lateness of delayed jobs (handler start - due time).

This file is named like the stdlib ``queue`` module: ``_report`` is imported first, which moves
benchmarks/ to the end of sys.path so that ``import queue`` (in jexkv, huey, multiprocessing)
still finds the stdlib. ``stdlib_queue_check`` fails the run if that ever stops being true.
"""

import argparse
import contextlib
import gc
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import _node
import _report  # found in benchmarks/; puts the repo root first and benchmarks/ last on sys.path
from _redis import HOST, RedisServer

import jexkv
import jexkv.resp

WORKERS = 4
QUEUE = "bench"
TASK = "noop"
DRAIN_TIMEOUT_S = 120
PICKUP_TIMEOUT_S = 10
DELAY_MS = 200
RQ_MAX_N = 1_000  # rq processes a few hundred jobs/s: it runs on at most this many jobs

REDIS = {"port": None}  # the port of the redis-server main() starts, when there is one
# One db each on that server, emptied before every use.
DB_JEXKV, DB_HUEY, DB_RQ, DB_BULLMQ, DB_MANY, DB_LATENCY = range(6)


def stdlib_queue_check():
    """Raise if ``import queue`` would give this script instead of the stdlib module."""
    import queue

    here = os.path.abspath(__file__)
    path = os.path.abspath(getattr(queue, "__file__", "") or "")
    if path == here or os.path.dirname(path) == _report.BENCH_DIR or not hasattr(queue, "Empty"):
        raise RuntimeError(f"`import queue` gives {path}, not the stdlib module")


def sqlite_url(directory, name="queue.db"):
    return "sqlite:///" + os.path.join(directory, name)


def redis_url(db):
    return f"redis://{HOST}:{REDIS['port']}/{db}"


def flushdb(db):
    """Empty one db of the benchmark's redis-server (FLUSHDB), with jexkv's own client."""
    client = jexkv.resp.Redis(HOST, REDIS["port"], db=db)
    try:
        client.execute_command("FLUSHDB")
    finally:
        client.close()


def backend_url(backend, directory, db):
    """The URL of a fresh jexkv store: memory://, a new SQLite file, or an emptied Redis db."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return sqlite_url(directory)
    flushdb(db)
    return redis_url(db)


class Counter:
    """The handler every contender runs: count under a lock, set an Event at n."""

    def __init__(self, n):
        self.n, self.count = n, 0
        self.lock, self.done = threading.Lock(), threading.Event()

    def hit(self):
        with self.lock:
            self.count += 1
            if self.count == self.n:
                self.done.set()

    def wait(self, name):
        if not self.done.wait(DRAIN_TIMEOUT_S):
            raise RuntimeError(f"{name}: {self.count:,} of {self.n:,} jobs ran in time")


# Contenders. Each one is a class: __init__(directory, counter) opens a fresh store (directory is
# an empty temporary folder of its own), enqueue(n) and drain() are the timed parts, check(n) is
# the untimed check that every job ran exactly once and none is left, close() releases the store.


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
    """The rq job. rq imports it by name in its worker processes, which run this file as
    __main__ too (see rq_worker_process), so it is enqueued as "__main__.rq_noop"."""


def rq_worker_process(where):
    """The child side of RQSimpleWorker: one SimpleWorker, built (imports, connection) before the
    parent's clock starts; says "ready", waits for a line on stdin, works in burst mode (until
    the queue is empty, then returns) and says "done". rq's default logging (INFO, lines per
    job) writes to stdout: stdout is moved to stderr, which the parent sends to a file, and the
    two words go out on the original stdout."""
    stdlib_queue_check()
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
            self.children.append(
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--rq-worker", where],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self.log,
                    text=True,
                    cwd=_report.REPO_ROOT,
                )
            )
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
            enqueue("__main__.rq_noop")

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
                if child.stdin and not child.stdin.closed:
                    child.stdin.close()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
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


CONTENDERS = [
    JexkvMemory,
    JexkvSQLite,
    JexkvRedis,
    HueyMemory,
    HueySQLite,
    HueySQLiteNoFsync,
    HueyRedis,
    PersistQueueAck,
    RQSimpleWorker,
    NodeBullMQ,
]


def missing(contender):
    """Why a contender cannot run here, or None: no redis-server, a Python package or node."""
    if getattr(contender, "needs_server", False) and REDIS["port"] is None:
        return "redis-server is not on PATH"
    requires = getattr(contender, "requires", ())
    for module in (requires,) if isinstance(requires, str) else requires:
        try:
            __import__(module)
        except ImportError:
            package = getattr(contender, "package", module)
            return f"{module} is not installed (pip install {package})"
    unavailable = getattr(contender, "unavailable", None)
    return unavailable() if unavailable else None


def jobs_for(contender, n):
    return min(n, getattr(contender, "max_n", n))


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run_throughput(n, rounds):
    """{name: (enqueue jobs/s, processed jobs/s)} for the contenders that ran, {name: note}.

    A contender with a ``run(n)`` method times itself (the Node script); ``max_n`` caps its n."""
    runnable, skipped = _report.split_runnable(CONTENDERS, missing)
    best = {c.name: [float("inf"), float("inf")] for c in runnable}
    for round_no in range(rounds):
        for contender in runnable:
            jobs = jobs_for(contender, n)
            with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
                gc.collect()
                store = contender(directory, Counter(jobs))
                try:
                    if hasattr(store, "run"):
                        enqueue_s, drain_s = store.run(jobs)
                    else:
                        enqueue_s = timed(store.enqueue, jobs)
                        gc.collect()
                        drain_s = timed(store.drain)
                    store.check(jobs)
                finally:
                    store.close()
            times = best[contender.name]
            times[0], times[1] = min(times[0], enqueue_s), min(times[1], drain_s)
        print(f"  round {round_no + 1}/{rounds} done", flush=True)
    results = {}
    for contender in runnable:
        jobs, (e, d) = jobs_for(contender, n), best[contender.name]
        results[contender.name] = (jobs / e, jobs / d)
    return results, skipped


def backends():
    """The jexkv backends the jexkv-alone measures run on: redis only with a server."""
    return ["memory", "sqlite", *(["redis"] if REDIS["port"] is not None else [])]


def run_enqueue_many(n, rounds):
    """{backend: jobs/s} for one enqueue_many of n jobs, best of rounds."""
    items = [{"name": TASK, "payload": None} for _ in range(n)]
    best = {backend: float("inf") for backend in backends()}
    for _ in range(rounds):
        for backend in best:
            with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
                with jexkv.open_queue(backend_url(backend, directory, DB_MANY)) as q:
                    gc.collect()
                    seconds = timed(q.enqueue_many, QUEUE, items)
                    waiting = q.counts(QUEUE)["waiting"]
                    if waiting != n:
                        raise RuntimeError(f"enqueue_many {backend}: {waiting:,} waiting of {n:,}")
            best[backend] = min(best[backend], seconds)
    return {backend: n / s for backend, s in best.items()}


def percentiles(samples_ms):
    """(p50, p99) by nearest rank."""
    ordered = sorted(samples_ms)

    def rank(p):
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return rank(50), rank(99)


def pause(rng):
    """A random idle time before the next enqueue, so the worker is really waiting for work (and
    a polling worker is caught at a random point of its poll interval)."""
    time.sleep(rng.uniform(0.002, 0.020))


def pickup_in_process(url, samples, warmup, rng):
    """Latencies (ms) from just before enqueue to the handler's first line, one job at a time."""
    started, ran = [], threading.Event()

    def handler(job):
        started.append(time.perf_counter())
        ran.set()

    latencies = []
    with jexkv.open_queue(url) as q:
        q.register_worker(QUEUE, handler, concurrency=1)
        enqueue = q.enqueue
        for i in range(warmup + samples):
            pause(rng)
            ran.clear()
            t0 = time.perf_counter()
            enqueue(QUEUE, TASK, None)
            if not ran.wait(PICKUP_TIMEOUT_S):
                raise RuntimeError(f"pickup {url}: job {i} not picked up in {PICKUP_TIMEOUT_S} s")
            if i >= warmup:
                latencies.append((started[-1] - t0) * 1000)
    return latencies


def worker_process(url):
    """The child side of pickup_across_processes: one idle worker on the same SQLite file or Redis
    db that prints "job_id time.time()" as the first thing its handler does."""
    stdlib_queue_check()
    write, flush, clock = sys.stdout.write, sys.stdout.flush, time.time

    def handler(job):
        t = clock()
        write(f"{job.id} {t!r}\n")
        flush()

    with jexkv.open_queue(url) as q:
        q.register_worker(QUEUE, handler, concurrency=1)
        write("ready\n")
        flush()
        sys.stdin.read()  # until the parent closes our stdin


def pickup_across_processes(url, samples, warmup, rng):
    """Latencies (ms) from the parent's time.time() just before enqueue to the child's handler."""
    import queue

    lines = queue.Queue()
    latencies = []
    with jexkv.open_queue(url) as q:  # creates the SQLite file and tables before the child opens it
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_report.REPO_ROOT,
        )

        def read():
            for line in child.stdout:
                lines.put(line.strip())
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if lines.get(timeout=30) != "ready":
                raise RuntimeError("pickup across processes: the worker process did not start")
            for i in range(warmup + samples):
                pause(rng)
                t0 = time.time()
                job = q.enqueue(QUEUE, TASK, None)
                try:
                    line = lines.get(timeout=PICKUP_TIMEOUT_S)
                except queue.Empty:
                    line = None
                if line is None:
                    raise RuntimeError(f"pickup across processes: job {i} not picked up")
                job_id, started = line.split()
                if job_id != job.id:
                    raise RuntimeError(f"pickup across processes: ran {job_id}, sent {job.id}")
                if i >= warmup:
                    latencies.append((float(started) - t0) * 1000)
        finally:
            child.stdin.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            reader.join(timeout=5)
    if child.returncode:
        raise RuntimeError(f"pickup across processes: worker exited with {child.returncode}")
    return latencies


def delayed_lateness(url, samples, rng):
    """Lateness (ms) of delay_ms=DELAY_MS jobs: time.time() at handler start - the due_at_ms of
    the job that enqueue returned (jexkv keeps times in whole ms, so due_at_ms may be up to 1 ms
    before the caller's float "now + delay"). The enqueued job's due time, not the one the handler
    sees: on Redis a promoted job's hash has delay 0, as BullMQ writes it. Jobs are enqueued
    5-25 ms apart, so several are pending at once."""
    started, due, done = {}, {}, threading.Event()

    def handler(job):
        started[job.id] = time.time() * 1000
        if len(started) == samples:
            done.set()

    with jexkv.open_queue(url) as q:
        q.register_worker(QUEUE, handler, concurrency=1)
        for _ in range(samples):
            time.sleep(rng.uniform(0.005, 0.025))
            job = q.enqueue(QUEUE, TASK, None, delay_ms=DELAY_MS)
            if job.due_at_ms < job.created_at_ms + DELAY_MS:
                raise RuntimeError(f"delayed {url}: job {job.id} is due too soon: {job}")
            due[job.id] = job.due_at_ms
        if not done.wait(DELAY_MS / 1000 + PICKUP_TIMEOUT_S):
            raise RuntimeError(f"delayed {url}: {len(started)} of {samples} jobs ran")
    lateness = {i: started[i] - due[i] for i in due}
    early = {i: ms for i, ms in lateness.items() if ms < 0}
    if early:
        raise RuntimeError(f"delayed {url}: jobs ran before they were due (ms): {early}")
    return list(lateness.values())


def run_latency(samples, delayed, rng):
    """{measure: {backend: (p50, p99) or None}}, in ms."""
    names = backends()
    results = {"in": {}, "across": {"memory": None}, "delayed": {}}
    for backend in names:
        with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
            url = backend_url(backend, directory, DB_LATENCY)
            results["in"][backend] = percentiles(pickup_in_process(url, samples, 5, rng))
        print(f"  pickup in-process {backend} done", flush=True)
    for backend in names[1:]:
        with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
            url = backend_url(backend, directory, DB_LATENCY)
            results["across"][backend] = percentiles(pickup_across_processes(url, samples, 5, rng))
        print(f"  pickup across processes {backend} done", flush=True)
    for backend in names:
        with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
            url = backend_url(backend, directory, DB_LATENCY)
            results["delayed"][backend] = percentiles(delayed_lateness(url, delayed, rng))
    print("  delayed jobs done", flush=True)
    return results


def ratio(results, a, b, column):
    if a in results and b in results:
        return results[a][column] / results[b][column]
    return None


def absolute_line(label, value, target, unit, higher_is_better=True, fmt="{:,.0f}"):
    """``- label: 61,234 jobs/s (target >= 50,000 jobs/s): met``."""
    sign = ">=" if higher_is_better else "<="
    met = value >= target if higher_is_better else value <= target
    shown, goal = fmt.format(value), f"{target:,}"
    return f"- {label}: {shown} {unit} (target {sign} {goal} {unit}): {'met' if met else 'MISSED'}"


BACKEND_HEADERS = {"memory": "memory://", "sqlite": "sqlite (file)", "redis": "redis://"}
REDIS_PEERS = ["huey RedisHuey", "rq SimpleWorker", "Node BullMQ"]


def versions():
    """The versions of redis-server and of the Redis peers that are there, as one line."""
    found = []
    if shutil.which("redis-server"):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        words = [w for w in out.split() if w.startswith("v=")]
        found.append(f"redis-server {words[0][2:] if words else '?'}")
    for module, label in (("huey", "huey"), ("redis", "redis-py"), ("rq", "rq")):
        try:
            found.append(f"{label} {__import__(module).__version__}")
        except (ImportError, AttributeError):
            pass
    if shutil.which("node"):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
        found.append(f"node {node.strip()}")
        found.append(", ".join(f"{p} {v}" for p, v in _node.pinned().items()))
    return ", ".join(found)


def throughput_table(n, results):
    """Every contender's rates; the Redis peers also get jexkv redis:// / peer for both."""
    ENQ, PROC = 0, 1
    rows = []
    for contender in CONTENDERS:
        name, jobs = contender.name, jobs_for(contender, n)
        label = name if jobs == n else f"{name} ({jobs:,} jobs)"
        if name not in results:
            rows.append([label, "skipped", "skipped", "", ""])
            continue
        enq, proc = results[name]
        versus = ["", ""]
        if name in REDIS_PEERS:
            versus = [
                f"{value:.2f}x" if value is not None else "n/a"
                for value in (
                    ratio(results, JexkvRedis.name, name, ENQ),
                    ratio(results, JexkvRedis.name, name, PROC),
                )
            ]
        rows.append([label, f"{enq:,.0f}", f"{proc:,.0f}", *versus])
    headers = [
        "contender",
        "enqueue jobs/s",
        f"processed jobs/s ({WORKERS} workers)",
        "jexkv redis / this, enqueue",
        "jexkv redis / this, processed",
    ]
    return _report.markdown_table(headers, rows)


def latency_table(n, many, latency):
    def ms(pair):
        return "n/a" if pair is None else f"{pair[0]:.2f} / {pair[1]:.2f}"

    names = list(many)
    rows = [
        [f"`enqueue_many` of {n:,} jobs (jobs/s)", *(f"{many[b]:,.0f}" for b in names)],
        ["pickup, idle worker in-process (ms)", *(ms(latency["in"][b]) for b in names)],
        ["pickup, idle worker in another process (ms)", *(ms(latency["across"][b]) for b in names)],
        [
            f"lateness of `delay_ms={DELAY_MS}` jobs (ms)",
            *(ms(latency["delayed"][b]) for b in names),
        ],
    ]
    return _report.markdown_table(["jexkv", *(BACKEND_HEADERS[b] for b in names)], rows)


def target_lines(results, skipped, many, latency):
    ENQ, PROC = 0, 1
    mem, sql, red = JexkvMemory.name, JexkvSQLite.name, JexkvRedis.name
    checks = [
        ("memory processed / huey memory processed", mem, HueyMemory.name, PROC, 2),
        ("sqlite processed / huey sqlite processed", sql, HueySQLite.name, PROC, 3),
        ("sqlite enqueue / huey sqlite enqueue", sql, HueySQLite.name, ENQ, 2),
        ("redis processed / Node BullMQ processed", red, NodeBullMQ.name, PROC, 1),
        ("redis processed / huey redis processed", red, HueyRedis.name, PROC, 3),
        ("redis enqueue / Node BullMQ enqueue", red, NodeBullMQ.name, ENQ, 1),
    ]
    lines = []
    for label, a, b, column, target in checks:
        why = "; ".join(dict.fromkeys(skipped[x] for x in (a, b) if x in skipped))
        lines.append(_report.ratio_line(label, ratio(results, a, b, column), target, missing=why))
    for backend in ("sqlite", "redis"):
        label = f"{backend} `enqueue_many`"
        if backend in many:
            lines.append(absolute_line(label, many[backend], 50_000, "jobs/s"))
        else:
            lines.append(f"- {label}: n/a (target >= 50,000 jobs/s): redis-server is not on PATH")
    for backend in ("memory", "sqlite"):
        p50 = latency["in"][backend][0]
        lines.append(
            absolute_line(f"pickup p50 in-process ({backend})", p50, 2, "ms", False, fmt="{:.2f}")
        )
    p50 = latency["across"]["sqlite"][0]
    lines.append(
        absolute_line("pickup p50 across processes (sqlite)", p50, 50, "ms", False, fmt="{:.2f}")
    )
    return lines


def info_lines(results, latency):
    ENQ, PROC = 0, 1
    sql, red = JexkvSQLite.name, JexkvRedis.name
    lines = []
    for label, a, b, column in [
        ("sqlite processed / persist-queue processed", sql, PersistQueueAck.name, PROC),
        ("sqlite enqueue / persist-queue enqueue", sql, PersistQueueAck.name, ENQ),
        ("sqlite processed / huey sqlite fsync=False processed", sql, HueySQLiteNoFsync.name, PROC),
        ("sqlite enqueue / huey sqlite fsync=False enqueue", sql, HueySQLiteNoFsync.name, ENQ),
        ("redis enqueue / huey redis enqueue", red, HueyRedis.name, ENQ),
        ("redis processed / rq processed", red, RQSimpleWorker.name, PROC),
        ("redis enqueue / rq enqueue", red, RQSimpleWorker.name, ENQ),
    ]:
        value = ratio(results, a, b, column)
        if value is not None:
            lines.append(f"- {label}: {value:.2f}x (no target)")
    if "redis" in latency["in"]:
        p50_in, p50_across = latency["in"]["redis"][0], latency["across"]["redis"][0]
        lines.append(
            f"- pickup p50 (redis): {p50_in:.2f} ms in-process, {p50_across:.2f} ms across"
            " processes (no target)"
        )
    return lines


def report(n, rounds, results, skipped, many, latency, samples, delayed, command):
    notes = [f"- {name}: skipped, {note}" for name, note in skipped.items()]
    found = versions()
    lines = [
        "## Task queue",
        "",
        *_report.machine_lines(command),
        *([f"- Versions: {found}"] if found else []),
        "",
        (
            f"{n:,} no-op jobs enqueued one call at a time, then drained by {WORKERS} workers,"
            " timed from starting the workers until every job is done (the handler counts under"
            " a lock; jexkv is also waited on until `counts()` shows nothing waiting or active)."
            f" Best of {rounds} rounds, interleaved, with a fresh store in a fresh temporary"
            " folder each round. Peers run with their default settings: huey's own consumer"
            " (`create_consumer(workers=4, worker_type='thread')`), persist-queue with 4 threads"
            " doing `get`/`ack` (`multithreading=True`)."
        ),
        "",
        (
            "The Redis contenders share one local `redis-server` (127.0.0.1, no persistence),"
            " each on its own db, emptied with FLUSHDB before every round. jexkv redis:// and"
            " huey RedisHuey run 4 worker threads in this process, like the others. rq runs its"
            " own way: 4 worker processes, each a `SimpleWorker` in burst mode (what `rq worker"
            " --burst --worker-class rq.SimpleWorker` runs, with rq's default INFO logging to a"
            " file), started before the clock, timed until all four have returned; on"
            f" {jobs_for(RQSimpleWorker, n):,} jobs only, as it is slow. Node BullMQ"
            " (benchmarks/node/bench.js) awaits `Queue.add` one job at a time, then runs one"
            " `Worker` with `concurrency: 4`, timed by the script itself from creating the Worker"
            " to its last `completed` event, after an untimed warm-up of 500 jobs on another"
            " queue (a fresh node process runs each round). Completed jobs: jexkv deletes them"
            " (`keep_completed=0`), BullMQ and rq keep them (their defaults), huey keeps no"
            " result for a task that returns None. The last two columns are jexkv redis:// /"
            " that peer."
        ),
        "",
        throughput_table(n, results),
        "",
        (
            "SQLite durability differs: SqliteHuey and persist-queue keep SQLite's default"
            " `synchronous=FULL` (an fsync per commit), jexkv uses `synchronous=NORMAL` in WAL"
            " mode (no fsync per commit: a crash of the process loses nothing, a crash of the OS"
            " may lose the last commits). The `fsync=False` row (`synchronous=OFF`, less durable"
            " than jexkv) shows huey without that cost; it is for reference, the targets use"
            " huey's default."
        ),
        "",
        *notes,
        *([""] if notes else []),
        (
            f"jexkv alone. `enqueue_many`: one call with {n:,} jobs, best of {rounds}. Pickup"
            f" latency, p50 / p99 over {samples} jobs sent one at a time to an idle worker"
            " (`concurrency=1`) after a random 2-20 ms pause, from just before `enqueue` to the"
            " first line of the handler; across processes the worker runs in a subprocess on the"
            " same SQLite file or Redis db and both sides read `time.time()`. Lateness of delayed"
            f" jobs, p50 / p99 over {delayed} jobs with `delay_ms={DELAY_MS}` enqueued 5-25 ms"
            " apart: `time.time()` at handler start minus the job's `due_at_ms`."
        ),
        "",
        latency_table(n, many, latency),
        "",
        "Ratios against targets:",
        "",
        *target_lines(results, skipped, many, latency),
        *info_lines(results, latency),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "jobs per round")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # child process
    parser.add_argument("--rq-worker", metavar="PORT:DB", help=argparse.SUPPRESS)  # child
    args = parser.parse_args(argv)
    if args.worker:
        worker_process(args.worker)
        return
    if args.rq_worker:
        rq_worker_process(args.rq_worker)
        return
    stdlib_queue_check()
    n = args.n or (500 if args.quick else 5_000)
    rounds = 1 if args.quick else 3
    samples = 30 if args.quick else 200
    delayed = 10 if args.quick else 50
    rng = random.Random(1)

    print(f"queue benchmark: {n:,} jobs, {WORKERS} workers, best of {rounds}", flush=True)
    with contextlib.ExitStack() as stack:
        if shutil.which("redis-server"):
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="jexkv-bench-"))
            REDIS["port"] = stack.enter_context(RedisServer(folder)).port
        results, skipped = run_throughput(n, rounds)
        print(f"enqueue_many: {n:,} jobs", flush=True)
        many = run_enqueue_many(n, rounds)
        print(f"latency: {samples} pickups, {delayed} delayed jobs", flush=True)
        latency = run_latency(samples, delayed, rng)
    command = _report.command_line("queue.py")
    body = report(n, rounds, results, skipped, many, latency, samples, delayed, command)
    _report.publish("queue", body, args)


if __name__ == "__main__":
    main()
