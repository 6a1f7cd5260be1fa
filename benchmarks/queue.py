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

This file is the entry point: the arguments, the run order, the tables and target lines, and the
queue section of BENCHMARKS.md (through _report). What it runs is in modules of its own:
_queue_setup.py (settings, Redis dbs, store URLs, worker processes), _queue_jexkv.py and
_queue_peers.py (the contenders), _queue_throughput.py (the throughput runs and enqueue_many) and
_queue_latency.py (pickup latency and lateness). The worker processes run this file again, with
the hidden --worker or --rq-worker flag.

This file is named like the stdlib ``queue`` module: ``_report`` is imported before jexkv, here
and in every _queue_*.py module, which moves benchmarks/ to the end of sys.path so that ``import
queue`` (in jexkv, huey, multiprocessing) still finds the stdlib. ``stdlib_queue_check`` fails the
run, and the worker processes, if that ever stops being true.
"""

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import tempfile

import _node
import _report  # found in benchmarks/; puts the repo root first and benchmarks/ last on sys.path
from _queue_jexkv import JexkvMemory, JexkvRedis, JexkvSQLite
from _queue_latency import DELAY_MS, run_latency, worker_process
from _queue_peers import (
    HueyMemory,
    HueyRedis,
    HueySQLite,
    HueySQLiteNoFsync,
    NodeBullMQ,
    PersistQueueAck,
    RQSimpleWorker,
    rq_worker_process,
)
from _queue_setup import REDIS, WORKERS
from _queue_throughput import jobs_for, run_enqueue_many, run_throughput
from _redis import RedisServer

# The throughput table's rows, in the order each round runs them.
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


def stdlib_queue_check():
    """Raise if ``import queue`` would give this script instead of the stdlib module."""
    import queue

    here = os.path.abspath(__file__)
    path = os.path.abspath(getattr(queue, "__file__", "") or "")
    if path == here or os.path.dirname(path) == _report.BENCH_DIR or not hasattr(queue, "Empty"):
        raise RuntimeError(f"`import queue` gives {path}, not the stdlib module")


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
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds per contender, best kept (default 5)"
    )
    args = parser.parse_args(argv)
    stdlib_queue_check()  # in the worker processes (--worker, --rq-worker) too
    if args.worker:
        worker_process(args.worker)
        return
    if args.rq_worker:
        rq_worker_process(args.rq_worker)
        return
    n = args.n or (500 if args.quick else 5_000)
    # A shared 2-core VM's round trip swings several-fold within minutes: five interleaved
    # rounds give every contender a fair chance at a quiet moment.
    rounds = 1 if args.quick else args.rounds
    samples = 30 if args.quick else 200
    delayed = 10 if args.quick else 50
    rng = random.Random(1)

    print(f"queue benchmark: {n:,} jobs, {WORKERS} workers, best of {rounds}", flush=True)
    with contextlib.ExitStack() as stack:
        if shutil.which("redis-server"):
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="jexkv-bench-"))
            REDIS["port"] = stack.enter_context(RedisServer(folder)).port
        results, skipped = run_throughput(CONTENDERS, n, rounds)
        print(f"enqueue_many: {n:,} jobs", flush=True)
        many = run_enqueue_many(n, rounds)
        print(f"latency: {samples} pickups, {delayed} delayed jobs", flush=True)
        latency = run_latency(samples, delayed, rng)
    command = _report.command_line("queue.py")
    body = report(n, rounds, results, skipped, many, latency, samples, delayed, command)
    _report.publish("queue", body, args)


if __name__ == "__main__":
    main()
