"""jexkv's pickup latency (enqueue -> handler start of an idle worker, in this process and in a
worker process) and the lateness of delayed jobs (handler start - due time), for the queue
benchmark."""

import math
import sys
import tempfile
import threading
import time

import _report  # noqa: F401  (fixes sys.path before jexkv: see _queue_setup)
from _queue_setup import DB_LATENCY, QUEUE, TASK, backend_url, backends, start_child, stop_child

import jexkv

PICKUP_TIMEOUT_S = 10
DELAY_MS = 200


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
    db that prints "job_id time.time()" as the first thing its handler does. queue.py's main()
    has run stdlib_queue_check."""
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
        child = start_child("--worker", url)

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
            stop_child(child)
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
