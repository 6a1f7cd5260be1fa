"""Task-queue benchmark: jexkv's queue adapters side by side with huey and persist-queue.

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

Then jexkv alone: ``enqueue_many`` of N jobs in one call; the pickup latency of an idle worker
(enqueue -> handler start, in-process and from a worker in another process on the same SQLite
file); the lateness of delayed jobs (handler start - due time).

This file is named like the stdlib ``queue`` module: ``_report`` is imported first, which moves
benchmarks/ to the end of sys.path so that ``import queue`` (in jexkv, huey, multiprocessing)
still finds the stdlib. ``stdlib_queue_check`` fails the run if that ever stops being true.
"""

import argparse
import gc
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import _report  # found in benchmarks/; puts the repo root first and benchmarks/ last on sys.path

import jexkv

WORKERS = 4
QUEUE = "bench"
TASK = "noop"
DRAIN_TIMEOUT_S = 120
PICKUP_TIMEOUT_S = 10
DELAY_MS = 200


def stdlib_queue_check():
    """Raise if ``import queue`` would give this script instead of the stdlib module."""
    import queue

    here = os.path.abspath(__file__)
    path = os.path.abspath(getattr(queue, "__file__", "") or "")
    if path == here or os.path.dirname(path) == _report.BENCH_DIR or not hasattr(queue, "Empty"):
        raise RuntimeError(f"`import queue` gives {path}, not the stdlib module")


def sqlite_url(directory, name="queue.db"):
    return "sqlite:///" + os.path.join(directory, name)


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


CONTENDERS = [JexkvMemory, JexkvSQLite, HueyMemory, HueySQLite, HueySQLiteNoFsync, PersistQueueAck]


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run_throughput(n, rounds):
    """{name: (enqueue jobs/s, processed jobs/s)} for the contenders that ran, {name: note}."""
    runnable, skipped = _report.split_runnable(CONTENDERS)
    best = {c.name: [float("inf"), float("inf")] for c in runnable}
    for round_no in range(rounds):
        for contender in runnable:
            with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
                gc.collect()
                store = contender(directory, Counter(n))
                try:
                    enqueue_s = timed(store.enqueue, n)
                    gc.collect()
                    drain_s = timed(store.drain)
                    store.check(n)
                finally:
                    store.close()
            times = best[contender.name]
            times[0], times[1] = min(times[0], enqueue_s), min(times[1], drain_s)
        print(f"  round {round_no + 1}/{rounds} done", flush=True)
    return {name: (n / e, n / d) for name, (e, d) in best.items()}, skipped


def run_enqueue_many(n, rounds):
    """{"memory": jobs/s, "sqlite": jobs/s} for one enqueue_many of n jobs, best of rounds."""
    items = [{"name": TASK, "payload": None} for _ in range(n)]
    best = {"memory": float("inf"), "sqlite": float("inf")}
    for _ in range(rounds):
        for backend in best:
            with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
                url = "memory://" if backend == "memory" else sqlite_url(directory)
                with jexkv.open_queue(url) as q:
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
    """The child side of pickup_across_processes: one idle worker on the same SQLite file that
    prints "job_id time.time()" as the first thing its handler does."""
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
    with jexkv.open_queue(url) as q:  # creates the file and its tables before the child opens it
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
    """Lateness (ms) of delay_ms=DELAY_MS jobs: time.time() at handler start - the job's own
    due_at_ms (jexkv keeps times in whole ms, so due_at_ms may be up to 1 ms before the caller's
    float "now + delay"). Jobs are enqueued 5-25 ms apart, so several are pending at once."""
    lateness, done = {}, threading.Event()

    def handler(job):
        lateness[job.id] = time.time() * 1000 - job.due_at_ms
        if len(lateness) == samples:
            done.set()

    with jexkv.open_queue(url) as q:
        q.register_worker(QUEUE, handler, concurrency=1)
        for _ in range(samples):
            time.sleep(rng.uniform(0.005, 0.025))
            job = q.enqueue(QUEUE, TASK, None, delay_ms=DELAY_MS)
            if job.due_at_ms < job.created_at_ms + DELAY_MS:
                raise RuntimeError(f"delayed {url}: job {job.id} is due too soon: {job}")
        if not done.wait(DELAY_MS / 1000 + PICKUP_TIMEOUT_S):
            raise RuntimeError(f"delayed {url}: {len(lateness)} of {samples} jobs ran")
    early = {i: ms for i, ms in lateness.items() if ms < 0}
    if early:
        raise RuntimeError(f"delayed {url}: jobs ran before they were due (ms): {early}")
    return list(lateness.values())


def run_latency(samples, delayed, rng):
    """{measure: {"memory": (p50, p99) or None, "sqlite": (p50, p99) or None}}, in ms."""
    results = {"in": {}, "across": {"memory": None}, "delayed": {}}
    for backend in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
            url = "memory://" if backend == "memory" else sqlite_url(directory)
            results["in"][backend] = percentiles(pickup_in_process(url, samples, 5, rng))
        print(f"  pickup in-process {backend} done", flush=True)
    with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
        latencies = pickup_across_processes(sqlite_url(directory), samples, 5, rng)
        results["across"]["sqlite"] = percentiles(latencies)
    print("  pickup across processes done", flush=True)
    for backend in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
            url = "memory://" if backend == "memory" else sqlite_url(directory)
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


def report(n, rounds, results, skipped, many, latency, samples, delayed, command):
    ENQ, PROC = 0, 1
    rows = []
    for contender in CONTENDERS:
        name = contender.name
        if name in results:
            enq, proc = results[name]
            rows.append([name, f"{enq:,.0f}", f"{proc:,.0f}"])
        else:
            rows.append([name, "skipped", "skipped"])
    table = _report.markdown_table(
        ["contender", "enqueue jobs/s", f"processed jobs/s ({WORKERS} threads)"], rows
    )

    def ms(pair):
        return "n/a" if pair is None else f"{pair[0]:.2f} / {pair[1]:.2f}"

    many_row = [f"{many[b]:,.0f}" for b in ("memory", "sqlite")]
    latency_rows = [
        [f"`enqueue_many` of {n:,} jobs (jobs/s)", *many_row],
        ["pickup, idle worker in-process (ms)", *map(ms, latency["in"].values())],
        ["pickup, idle worker in another process (ms)", *map(ms, latency["across"].values())],
        [
            f"lateness of `delay_ms={DELAY_MS}` jobs (ms)",
            *map(ms, latency["delayed"].values()),
        ],
    ]
    latency_table = _report.markdown_table(["jexkv", "memory://", "sqlite (file)"], latency_rows)

    mem, sql = JexkvMemory.name, JexkvSQLite.name
    checks = [
        ("memory processed / huey memory processed", mem, HueyMemory.name, PROC, 2),
        ("sqlite processed / huey sqlite processed", sql, HueySQLite.name, PROC, 3),
        ("sqlite enqueue / huey sqlite enqueue", sql, HueySQLite.name, ENQ, 2),
    ]
    ratios = []
    for label, a, b, column, target in checks:
        why = "; ".join(skipped[x] for x in (a, b) if x in skipped)
        ratios.append(_report.ratio_line(label, ratio(results, a, b, column), target, missing=why))
    ratios.append(absolute_line("sqlite `enqueue_many`", many["sqlite"], 50_000, "jobs/s"))
    for backend in ("memory", "sqlite"):
        p50 = latency["in"][backend][0]
        ratios.append(
            absolute_line(f"pickup p50 in-process ({backend})", p50, 2, "ms", False, fmt="{:.2f}")
        )
    ratios.append(
        absolute_line(
            "pickup p50 across processes (sqlite)",
            latency["across"]["sqlite"][0],
            50,
            "ms",
            False,
            fmt="{:.2f}",
        )
    )
    info = []
    for label, a, b, column in [
        ("sqlite processed / persist-queue processed", sql, PersistQueueAck.name, PROC),
        ("sqlite enqueue / persist-queue enqueue", sql, PersistQueueAck.name, ENQ),
        ("sqlite processed / huey sqlite fsync=False processed", sql, HueySQLiteNoFsync.name, PROC),
        ("sqlite enqueue / huey sqlite fsync=False enqueue", sql, HueySQLiteNoFsync.name, ENQ),
    ]:
        value = ratio(results, a, b, column)
        if value is not None:
            info.append(f"- {label}: {value:.2f}x (no target)")

    notes = [f"- {name}: skipped, {note}" for name, note in skipped.items()]
    lines = [
        "## Task queue",
        "",
        *_report.machine_lines(command),
        "",
        (
            f"{n:,} no-op jobs enqueued one call at a time, then drained by {WORKERS} worker"
            " threads in the same process, timed from starting the workers until every job is"
            " done (the handler counts under a lock; jexkv is also waited on until `counts()`"
            f" shows nothing waiting or active). Best of {rounds} rounds, interleaved, with a"
            " fresh store in a fresh temporary folder each round. Peers run with their default"
            " settings: huey's own consumer (`create_consumer(workers=4, worker_type='thread')`),"
            " persist-queue with 4 threads doing `get`/`ack` (`multithreading=True`)."
        ),
        "",
        table,
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
            " same SQLite file and both sides read `time.time()`. Lateness of delayed jobs, p50 /"
            f" p99 over {delayed} jobs with `delay_ms={DELAY_MS}` enqueued 5-25 ms apart:"
            " `time.time()` at handler start minus the job's `due_at_ms`."
        ),
        "",
        latency_table,
        "",
        "Ratios against targets:",
        "",
        *ratios,
        *info,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "jobs per round")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.worker:
        worker_process(args.worker)
        return
    stdlib_queue_check()
    n = args.n or (500 if args.quick else 5_000)
    rounds = 1 if args.quick else 3
    samples = 30 if args.quick else 200
    delayed = 10 if args.quick else 50
    rng = random.Random(1)

    print(f"queue benchmark: {n:,} jobs, {WORKERS} worker threads, best of {rounds}", flush=True)
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
