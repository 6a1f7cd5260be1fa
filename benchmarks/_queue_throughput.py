"""The throughput runs of the queue benchmark: every contender enqueues then drains N jobs, best
of a few interleaved rounds; and jexkv's ``enqueue_many``."""

import gc
import tempfile
import threading
import time

import _report
from _queue_setup import DB_MANY, DRAIN_TIMEOUT_S, QUEUE, REDIS, TASK, backend_url, backends

import jexkv

# Contenders. Each one is a class: __init__(directory, counter) opens a fresh store (directory is
# an empty temporary folder of its own), enqueue(n) and drain() are the timed parts, check(n) is
# the untimed check that every job ran exactly once and none is left, close() releases the store.


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


def run_throughput(contenders, n, rounds):
    """{name: (enqueue jobs/s, processed jobs/s)} for the contenders that ran, {name: note}.

    A contender with a ``run(n)`` method times itself (the Node script); ``max_n`` caps its n."""
    runnable, skipped = _report.split_runnable(contenders, missing)
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
