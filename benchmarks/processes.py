"""Process workers: CPU-bound jobs on jexkv threads and processes, RQ's forking workers and
huey's process workers; and no-op jobs through jexkv's processes (the cost of the pipe).

    python benchmarks/processes.py              # full run, rewrites the processes section
    python benchmarks/processes.py --no-write   # print only
    python benchmarks/processes.py --quick      # smoke run (fewer jobs, never writes)

CPU-bound: N jobs of a pure-Python loop of 20 ms of CPU (benchmarks/_cpu.py), drained by as
many workers as the machine has cores: jexkv with ``concurrency=cores`` in threads and with
``processes=True`` (SQLite), RQ with that many ``rq.Worker`` processes (a forked work horse
per job, burst mode; started before the clock), huey with a consumer of that many process
workers (SqliteHuey). Jobs/s from the first job to the last, best of a few rounds.

No-op jobs: 5,000 jobs through ``processes=True`` and through threads (SQLite,
``concurrency=cores``): the per-job cost of crossing to a child and back.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import _cpu
import _report  # found in benchmarks/; puts the repo root first on sys.path
from _redis import RedisServer

import jexkv

MS = 20
CORES = os.cpu_count() or 2


def _drain(url, handler, n, payload, **options):
    """Jobs/s of a jexkv worker draining ``n`` jobs enqueued before it starts."""
    with jexkv.open_queue(url) as q:
        q.enqueue_many("cpu", [{"name": "job", "payload": payload} for _ in range(n)])
        counted = _Counted(handler)
        started = time.perf_counter()
        q.register_worker("cpu", counted if not options.get("processes") else handler, **options)
        if options.get("processes"):
            deadline = time.monotonic() + 300
            while q.counts("cpu")["completed"] + q.counts("cpu")["dead"] < n:
                if time.monotonic() > deadline:
                    raise RuntimeError("processes did not drain in time")
                time.sleep(0.005)
        else:
            counted.wait(n)
        took = time.perf_counter() - started
    return n / took


class _Counted:
    def __init__(self, handler):
        self.handler, self.n, self.lock, self.event = (
            handler,
            0,
            threading.Lock(),
            threading.Event(),
        )
        self.target = None

    def __call__(self, job):
        result = self.handler(job)
        with self.lock:
            self.n += 1
            if self.target is not None and self.n >= self.target:
                self.event.set()
        return result

    def wait(self, n):
        with self.lock:
            self.target = n
            if self.n >= n:
                return
        self.event.wait(300)


def jexkv_cpu(folder, n, processes):
    url = f"sqlite:///{folder}/cpu-{processes}-{time.monotonic_ns()}.db?keep_completed={n}"
    return _drain(url, _cpu.burn, n, MS, concurrency=CORES, processes=processes)


def jexkv_noop(folder, n, processes):
    url = f"sqlite:///{folder}/noop-{processes}-{time.monotonic_ns()}.db?keep_completed={n}"
    return _drain(url, _cpu.noop, n, None, concurrency=CORES, processes=processes)


def rq_cpu(server, n):
    import redis
    import rq

    connection = redis.Redis(host="127.0.0.1", port=server.port, db=3)
    connection.flushdb()
    queue = rq.Queue("cpu", connection=connection)
    for _ in range(n):
        queue.enqueue(_cpu.burn_ms, MS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", _cpu.RQ_WORKER, str(server.port), "3"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                         stderr=subprocess.DEVNULL)
        for _ in range(CORES)
    ]  # fmt: skip
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        worker.stdout.readline()
        worker.wait(60)
    took = time.perf_counter() - started
    finished = queue.finished_job_registry.count
    if finished != n:
        raise RuntimeError(f"rq finished {finished} of {n}")
    return n / took


def huey_cpu(folder, n):
    import logging

    from huey import SqliteHuey

    logging.getLogger("huey").setLevel(logging.WARNING)
    huey = SqliteHuey("cpu", filename=f"{folder}/huey-{time.monotonic_ns()}.db")

    @huey.task()
    def burn(ms):
        return _cpu.burn_ms(ms)

    results = [burn(MS) for _ in range(n)]
    consumer = huey.create_consumer(workers=CORES, worker_type="process", periodic=False)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    started = time.perf_counter()
    consumer.start()  # its process workers, started here (and its signal handlers)
    try:
        for result in results:
            result.get(blocking=True, timeout=300)
        took = time.perf_counter() - started
    finally:
        consumer.stop(graceful=True)
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return n / took


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "CPU-bound jobs per run")
    args = parser.parse_args(argv)
    n = args.n or (40 if args.quick else 200)
    noop_n = 500 if args.quick else 5_000
    rounds = 1 if args.quick else 3
    best: dict[str, float] = {}
    skipped = {}
    with tempfile.TemporaryDirectory(prefix="jexkv-bench-proc-") as folder:
        server = RedisServer(folder).start() if shutil.which("redis-server") else None
        try:
            for _ in range(rounds):
                runs = {
                    "jexkv threads": lambda: jexkv_cpu(folder, n, False),
                    "jexkv processes=True": lambda: jexkv_cpu(folder, n, True),
                    "rq Worker (fork per job)": lambda: rq_cpu(server, n),
                    "huey process workers (SqliteHuey)": lambda: huey_cpu(folder, n),
                    "no-op: jexkv threads": lambda: jexkv_noop(folder, noop_n, False),
                    "no-op: jexkv processes=True": lambda: jexkv_noop(folder, noop_n, True),
                }
                for name, run in runs.items():
                    if name in skipped:
                        continue
                    try:
                        rate = run()
                    except (ImportError, AttributeError, RuntimeError, TypeError) as exc:
                        skipped[name] = f"{type(exc).__name__}: {exc}"
                        continue
                    print(f"{name}: {rate:,.1f} jobs/s", flush=True)
                    best[name] = max(best.get(name, 0.0), rate)
        finally:
            if server is not None:
                server.stop()
    body = report(best, skipped, n, noop_n, rounds, _report.command_line("processes.py"))
    _report.publish("processes", body, args)


def report(best, skipped, n, noop_n, rounds, command):
    lines = [f"## Process workers ({command})", "", *_report.machine_lines(command), ""]
    rows = [[name, f"{rate:,.1f}"] for name, rate in best.items()]
    lines += [_report.markdown_table(["contender", "jobs/s"], rows), ""]
    lines.append(f"CPU-bound: {n} jobs of {MS} ms of CPU, {CORES} workers (cores); no-op: "
                 f"{noop_n:,} jobs; best of {rounds} rounds.")  # fmt: skip
    for name, why in skipped.items():
        lines.append(f"- {name}: skipped, {why}")
    threads, procs = best.get("jexkv threads"), best.get("jexkv processes=True")
    ratio = procs / threads if procs and threads else None
    lines.append(_report.ratio_line("jexkv processes / jexkv threads, CPU-bound", ratio, 1.7))
    ceiling = CORES * 1000 / MS
    share = (procs or 0) / ceiling
    lines.append(f"- the ceiling for these jobs here: {CORES} cores x {1000 / MS:.0f} jobs/s = "
                 f"{ceiling:.0f} jobs/s; jexkv processes reach {share:.2f}x of it")  # fmt: skip
    peers = [rate for name, rate in best.items() if name.startswith(("rq", "huey"))]
    lines.append(_report.ratio_line(
        "jexkv processes / the best of RQ and huey, CPU-bound",
        procs / max(peers) if procs and peers else None, 2.0, missing="no peer ran"))  # fmt: skip
    noop = best.get("no-op: jexkv processes=True")
    lines.append(f"- no-op jobs through processes on SQLite: {noop or 0:,.0f} jobs/s (target >= "
                 f"5,000: {'met' if noop and noop >= 5000 else 'MISSED'}); through threads "
                 f"{best.get('no-op: jexkv threads', 0):,.0f} jobs/s")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
