"""Schedules and wait_for, per adapter (memory, SQLite, Redis).

    python benchmarks/schedules.py              # full run, rewrites the schedules section
    python benchmarks/schedules.py --no-write   # print only
    python benchmarks/schedules.py --quick      # smoke run (fewer ticks and jobs, never writes)

* Lateness: one schedule ticking every 100 ms and an idle worker (concurrency 1) in this
  process; for each of N ticks, the handler's start (wall clock) minus the tick: p50 / p99.
* 10,000 schedules: a queue that holds 10,000 schedules (hourly, starting in a day, so none
  ticks during the run) against one that holds none, in interleaved rounds: N no-op jobs
  enqueued one at a time (enqueue/s), then drained by 4 worker threads (processed/s); the
  ratios of the two; and how long ``schedules()`` takes to list the 10,000.
* wait_for: enqueue one no-op job and ``wait_for`` it, one at a time, an idle worker in this
  process; the round trip p50 / p99. The queue keeps 100 finished jobs (``keep_completed``):
  a job that finishes before ``wait_for`` begins is then still there to be read.

The script starts its own ``redis-server`` (no persistence, a temporary folder, a free port).
"""

import shutil
import statistics
import tempfile
import threading
import time

import _report  # found in benchmarks/; puts the repo root first on sys.path
from _redis import RedisServer

import jexkv
from jexkv.resp import Redis

MANY = 10_000


def _pcts(values):
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def _flush(url):
    if url.startswith("redis"):
        with Redis.from_url(url) as client:
            client.execute_command("FLUSHDB")


def lateness(url, ticks):
    """ms from each tick to its job's handler start, for ``ticks`` ticks of 100 ms."""
    _flush(url)
    late = []
    done = threading.Event()
    with jexkv.open_queue(url) as q:

        def handle(job):
            late.append(time.time() * 1000 - int(job.id.rsplit(":", 1)[1]))
            if len(late) >= ticks + 2:
                done.set()

        q.register_worker("late", handle)
        time.sleep(0.3)  # the worker is idle, waiting
        q.schedule("late", "beat", "tick", None, every_ms=100)
        done.wait(ticks * 0.1 + 30)
        q.unschedule("late", "beat")
    return late[2:]  # the first tick runs as it is made: not a wait for a due time


def _throughput(q, queue, n):
    started = time.perf_counter()
    for i in range(n):
        q.enqueue(queue, "noop", i)
    enqueue = n / (time.perf_counter() - started)
    left = [n]
    lock, done = threading.Lock(), threading.Event()

    def handle(job):
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    started = time.perf_counter()
    q.register_worker(queue, handle, concurrency=4)
    done.wait(300)
    return enqueue, n / (time.perf_counter() - started)


def many_schedules(url, n, rounds):
    """(rates with none, rates with MANY schedules, seconds to list them)."""
    _flush(url)
    start = int(time.time() * 1000) + 86_400_000
    # ``holder`` stays open throughout: a memory:// space lives while a queue on it is open.
    with jexkv.open_queue(url) as holder:
        for i in range(MANY):
            holder.schedule("crowded", f"s{i}", "hourly", i, every_ms=3_600_000, start_at_ms=start)
        started = time.perf_counter()
        listed = holder.schedules("crowded")
        list_s = time.perf_counter() - started
        assert len(listed) == MANY, len(listed)
        best = {"plain": (0.0, 0.0), "crowded": (0.0, 0.0)}
        for _ in range(rounds):
            for queue in ("plain", "crowded"):
                with jexkv.open_queue(url) as q:  # a new object: one worker per queue per object
                    enqueue, process = _throughput(q, queue, n)
                best[queue] = (max(best[queue][0], enqueue), max(best[queue][1], process))
        assert len(holder.schedules("crowded")) == MANY
    return best["plain"], best["crowded"], list_s


def wait_for_round_trip(url, samples):
    _flush(url)
    took = []
    with jexkv.open_queue(url, keep_completed=100) as q:
        q.register_worker("rt", lambda job: job.payload)
        time.sleep(0.3)
        for i in range(samples + 10):
            started = time.perf_counter()
            job = q.enqueue("rt", "noop", i)
            done = q.wait_for("rt", job.id, timeout_ms=10_000)
            took.append((time.perf_counter() - started) * 1000)
            assert done.result == i
    return took[10:]


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "no-op jobs per throughput phase")
    args = parser.parse_args(argv)
    ticks = 20 if args.quick else 100
    n = args.n or (500 if args.quick else 5_000)
    rounds = 1 if args.quick else 5
    samples = 50 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="jexkv-bench-sched-") as folder:
        urls = {"memory://": "memory://bench-sched", "sqlite": f"sqlite:///{folder}/q.db"}
        server = None
        if shutil.which("redis-server"):
            server = RedisServer(folder).start()
            urls["redis"] = server.url(db=0)
        try:
            results = {}
            for name, url in urls.items():
                print(f"{name}: lateness", flush=True)
                late = _pcts(lateness(url, ticks))
                print(f"{name}: {MANY:,} schedules", flush=True)
                plain, crowded, list_s = many_schedules(url, n, rounds)
                print(f"{name}: wait_for", flush=True)
                round_trip = _pcts(wait_for_round_trip(url, samples))
                results[name] = (late, plain, crowded, list_s, round_trip)
        finally:
            if server is not None:
                server.stop()
    body = report(results, ticks, n, rounds, samples, _report.command_line("schedules.py"))
    _report.publish("schedules", body, args)


def report(results, ticks, n, rounds, samples, command):
    lines = [f"## Schedules and wait_for ({command})", "", *_report.machine_lines(command), ""]
    headers = ["", *results]
    rows = [
        [f"lateness of {ticks} ticks of 100 ms, p50 / p99 (ms)",
         *(f"{r[0][0]:.2f} / {r[0][1]:.2f}" for r in results.values())],
        [f"enqueue/s, no schedules / {MANY:,} schedules",
         *(f"{r[1][0]:,.0f} / {r[2][0]:,.0f}" for r in results.values())],
        [f"processed/s (4 threads), no schedules / {MANY:,} schedules",
         *(f"{r[1][1]:,.0f} / {r[2][1]:,.0f}" for r in results.values())],
        [f"schedules() of {MANY:,} (ms)", *(f"{r[3] * 1000:,.0f}" for r in results.values())],
        [f"enqueue + wait_for of a no-op job, p50 / p99 (ms, {samples} jobs)",
         *(f"{r[4][0]:.2f} / {r[4][1]:.2f}" for r in results.values())],
    ]  # fmt: skip
    lines += [_report.markdown_table(headers, rows), ""]
    lines.append(f"Throughput: N={n:,}, best of {rounds} interleaved rounds.")
    for name, (late, plain, crowded, _, round_trip) in results.items():
        lines.append(f"- {name}: lateness p50 {late[0]:.2f} ms (target <= 5): "
                     f"{'met' if late[0] <= 5 else 'MISSED'}; p99 {late[1]:.2f} ms (target <= 50): "
                     f"{'met' if late[1] <= 50 else 'MISSED'}")  # fmt: skip
        for i, what in enumerate(("enqueue", "processing")):
            ratio = crowded[i] / plain[i] if plain[i] else None
            lines.append(_report.ratio_line(
                f"{name}: {what} with {MANY:,} schedules / with none", ratio, 0.9))  # fmt: skip
        lines.append(f"- {name}: enqueue + wait_for p50 {round_trip[0]:.2f} ms (target <= 3): "
                     f"{'met' if round_trip[0] <= 3 else 'MISSED'}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
