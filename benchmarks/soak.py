"""Soak test: a time-bounded mixed KV and task-queue load on SQLite and Redis, with processes
killed (and Redis restarted) under it, that checks nothing acknowledged was lost.

    python benchmarks/soak.py                        # 60 s per backend, writes the soak section
    python benchmarks/soak.py --seconds 10 --backend sqlite --no-write
    python benchmarks/soak.py --quick                # 5 s per backend, never writes

Each backend runs for ``--seconds`` with WORKERS worker processes (a jexkv TaskQueue each, with
THREADS handler threads) and PRODUCERS producer processes, all on one store: a SQLite file in a
temporary folder, or a throwaway redis-server (127.0.0.1, a free port) with ``appendonly yes`` and
``appendfsync always``, so that a restarted server keeps every write it acknowledged. The
processes are this script run again with the hidden ``--child`` flag.

A producer loops over a random mix of calls, each on keys of its own: ``enqueue`` of a job with an
id of its own, ``set`` of a unique value, ``incr`` of a counter, and ``set`` then ``pop`` of a
one-time token. It writes a line to its log before each call (the intent) and one after it
returns (the acknowledgement, with the result) or raises (the call's outcome is unknown).
A handler appends ``S job attempts pid`` when it starts and ``F job pid`` when it ends to one
shared runs log (O_APPEND, one write per line).

Faults, every FAULT_EVERY_S seconds: SIGKILL a random worker process (three times in four) or a
producer process, and start a new one in its place; on Redis, the server is also SIGKILLed and
restarted on the same port a few times (about every REDIS_RESTART_EVERY_S seconds), and every
client has to reconnect by itself. Queues run with ``lease_ms=LEASE_MS`` (so a killed worker's
jobs come back within seconds) and a ``max_stalls`` no run reaches (so a job that keeps landing
on killed workers is retried, never dead-lettered).

When the time is up the producers stop, and the workers drain the queue until every
acknowledged job has finished and the queue holds nothing waiting, active or delayed (or
DRAIN_TIMEOUT_S passes). Then the logs are checked:

* jobs lost: acknowledged enqueues whose job never finished a run (must be 0), and jobs left in
  the queue after the drain;
* duplicate runs: runs beyond the first of a job: a killed worker's jobs run again (at least
  once delivery), so some are expected;
* KV mismatches: every key is replayed from its producer's log (a call that raised or was cut by
  a kill may or may not have happened) and each acknowledged ``incr``/``pop`` result, and each
  key's final value, must be one the acknowledged history allows (must be 0).

The exit code is 1 when a job was lost or a KV value did not match.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import _report  # found in benchmarks/; puts the repo root first and benchmarks/ last on sys.path
from _redis import RedisServer

import jexkv

WORKERS = 3  # worker processes
THREADS = 2  # handler threads in each
PRODUCERS = 2  # producer processes
LEASE_MS = 3000
MAX_STALLS = 1_000_000
FAULT_EVERY_S = 2.0
REDIS_RESTART_EVERY_S = 12.0
DRAIN_TIMEOUT_S = 120.0
BACKLOG = 3000  # a producer pauses its enqueues while more jobs than this are waiting
QUEUE = "soak"
KEYS, COUNTERS, TOKENS = 8, 2, 2  # keys of each kind per producer
ABSENT = "<absent>"  # a key that does not exist, in the replay of its history
SCRIPT = os.path.abspath(__file__)


def queue_options():
    return {"lease_ms": LEASE_MS, "max_stalls": MAX_STALLS}


def append(fd, line):
    """One line, in one write to a file opened with O_APPEND."""
    os.write(fd, (line + "\n").encode())


def open_log(path):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


# --- child processes -------------------------------------------------------------------------


def worker_child(url, runs_path, seed):
    """Run THREADS handlers on QUEUE until stdin closes, then close the queue."""
    fd, pid = open_log(runs_path), os.getpid()
    rng = random.Random(seed)
    lock = threading.Lock()

    def handle(job):
        append(fd, f"S {job.id} {job.attempts_made} {pid}")
        with lock:
            pause = rng.random() < 0.05
        if pause:  # now and then a slower job, so that kills also cut running handlers
            time.sleep(0.02)
        append(fd, f"F {job.id} {pid}")

    q = jexkv.open_queue(url, **queue_options())
    q.register_worker(QUEUE, handle, concurrency=THREADS)
    sys.stdin.read()  # the parent closes our stdin to stop us
    q.close()


def producer_child(url, ident, log_path, until, seed):
    """Random KV calls and enqueues on keys of its own until ``until`` (time.time())."""
    fd, rng = open_log(log_path), random.Random(seed)
    kv = jexkv.open_kv(url)
    q = jexkv.open_queue(url, **queue_options())
    seq = 0

    def call(op, key, arg, fn, *fn_args):
        nonlocal seq
        seq += 1
        append(fd, json.dumps(["I", seq, op, key, arg]))
        try:
            result = fn(*fn_args)
        except Exception as exc:
            append(fd, json.dumps(["X", seq, type(exc).__name__]))
            time.sleep(0.02)  # the backend is down (a Redis restart): do not spin
            return
        append(fd, json.dumps(["A", seq, result]))

    def enqueue(job_id, n):
        return q.enqueue(QUEUE, "soak", {"n": n}, job_id=job_id).id

    n = 0
    while time.time() < until:
        n += 1
        if n % 200 == 0:  # keep the backlog bounded, so the drain stays short
            with contextlib.suppress(Exception):
                while q.counts(QUEUE)["waiting"] > BACKLOG and time.time() < until:
                    time.sleep(0.05)
        r = rng.random()
        if r < 0.4:
            job_id = f"p{ident}j{n}"
            call("enqueue", job_id, None, enqueue, job_id, n)
        elif r < 0.65:
            key, value = f"soak:{ident}:k{rng.randrange(KEYS)}", f"{ident}-{n}"
            call("set", key, value, kv.set, key, value)
        elif r < 0.85:
            key = f"soak:{ident}:n{rng.randrange(COUNTERS)}"
            call("incr", key, 1, kv.incr, key)
        else:
            key, value = f"soak:{ident}:t{rng.randrange(TOKENS)}", f"{ident}-{n}"
            call("set", key, value, kv.set, key, value)
            call("pop", key, None, kv.pop, key)


def child_main(args):
    if args.child == "worker":
        worker_child(args.url, args.log, args.seed)
    else:
        producer_child(args.url, args.id, args.log, args.until, args.seed)


# --- the redis-server --------------------------------------------------------------------------


# --- the run -----------------------------------------------------------------------------------


class Children:
    """The worker and producer processes of one run; replaces the killed ones."""

    def __init__(self, url, folder, until, rng, errors):
        self.url, self.folder, self.until, self.rng, self.errors = url, folder, until, rng, errors
        self.runs = os.path.join(folder, "runs.log")
        self.workers, self.producers, self.producer_logs = [], [], []
        self.started = 0

    def _spawn(self, *flags, stdin=None):
        self.started += 1
        return subprocess.Popen(
            [sys.executable, SCRIPT, "--seed", str(self.rng.randrange(2**31)), *flags],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=self.errors,
            cwd=_report.REPO_ROOT,
        )

    def start_worker(self):
        child = self._spawn(
            "--child", "worker", "--url", self.url, "--log", self.runs, stdin=subprocess.PIPE
        )
        self.workers.append(child)

    def start_producer(self):
        ident = len(self.producer_logs) + 1
        log = os.path.join(self.folder, f"producer-{ident}.log")
        self.producer_logs.append(log)
        flags = ["--child", "producer", "--url", self.url, "--log", log, "--id", str(ident)]
        self.producers.append(self._spawn(*flags, "--until", repr(self.until)))

    def kill(self, group):
        """SIGKILL a random live child of ``group`` and start another; False if none is left."""
        live = [c for c in group if c.poll() is None]
        if not live:
            return False
        victim = self.rng.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        group.remove(victim)
        if group is self.workers:
            self.start_worker()
        else:
            self.start_producer()
        return True

    def wait_producers(self, timeout):
        deadline = time.monotonic() + timeout
        for child in self.producers:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def stop_all(self):
        """Close the workers' stdin (their cue to close the queue) and wait; kill stragglers."""
        for child in self.workers:
            with contextlib.suppress(OSError):
                child.stdin.close()
        for child in self.workers + self.producers:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def read_runs(path, offset, starts, finishes):
    """Add the complete lines of the runs log from ``offset``; the new offset."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "S":
            starts[parts[1]] = starts.get(parts[1], 0) + 1
        elif len(parts) >= 3 and parts[0] == "F":
            finishes[parts[1]] = finishes.get(parts[1], 0) + 1
    return offset + end


def read_producer(path):
    """A producer's calls in order: [op, key, arg, status, result], status 'ok', 'raised' or
    'cut' (the intent is logged, the outcome is not: killed in the call)."""
    calls, by_seq = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by SIGKILL
            if entry[0] == "I":
                call = [entry[2], entry[3], entry[4], "cut", None]
                calls.append(call)
                by_seq[entry[1]] = call
            elif entry[1] in by_seq:
                call = by_seq[entry[1]]
                call[3], call[4] = ("ok", entry[2]) if entry[0] == "A" else ("raised", None)
    return calls


class KVReplay:
    """Every key's possible values, replayed from its producer's calls in order."""

    def __init__(self):
        self.possible = {}  # key -> set of values the key may hold now
        self.mismatches = []

    def apply(self, op, key, arg, status, result):
        now = self.possible.setdefault(key, {ABSENT})
        sure = status == "ok"
        if op == "set":
            self.possible[key] = {arg} if sure else now | {arg}
        elif op == "pop":
            got = ABSENT if result is None else result
            if sure and got not in now:
                self.mismatches.append(f"pop {key} -> {result!r}, expected one of {sorted(now)}")
            self.possible[key] = {ABSENT} if sure else now | {ABSENT}
        elif op == "incr":
            counts = {0 if v == ABSENT else v for v in now}
            if sure:
                if result - arg not in counts:
                    expected = sorted(c + arg for c in counts)
                    self.mismatches.append(f"incr {key} -> {result!r}, expected one of {expected}")
                self.possible[key] = {result}
            else:
                self.possible[key] = now | {c + arg for c in counts}

    def check_final(self, values):
        for key, now in self.possible.items():
            value = values.get(key, ABSENT)
            if value not in now:
                self.mismatches.append(f"final {key} = {value!r}, expected one of {sorted(now)}")


def drain(url, children, runs, acked, deadline_s):
    """Wait until every acknowledged job has finished a run and the queue is empty; returns
    (starts, finishes, counts, seconds)."""
    starts, finishes, offset = {}, {}, 0
    started = time.monotonic()
    counts = {}
    q = jexkv.open_queue(url, **queue_options())
    try:
        while True:
            offset = read_runs(runs, offset, starts, finishes)
            with contextlib.suppress(Exception):
                counts = q.counts(QUEUE)
            left = sum(counts.get(s, 1) for s in ("waiting", "active", "delayed"))
            if not left and all(job in finishes for job in acked):
                break
            if time.monotonic() - started > deadline_s:
                break
            for group in (children.workers,):  # a worker that died by itself is replaced
                for child in list(group):
                    if child.poll() is not None:
                        group.remove(child)
                        children.start_worker()
            time.sleep(0.2)
        return starts, finishes, counts, time.monotonic() - started
    finally:
        q.close()


def final_values(url, keys):
    values = {}
    kv = jexkv.open_kv(url)
    try:
        keys = sorted(keys)
        for i in range(0, len(keys), 200):
            values.update(kv.get_many(keys[i : i + 200]))
    finally:
        kv.close()
    return values


def run_backend(backend, seconds, seed):
    """One soak run; a dict of figures for the table."""
    rng = random.Random(seed)
    folder = tempfile.mkdtemp(prefix=f"jexkv-soak-{backend}-")
    redis = children = None
    keep = True  # the logs, for a look at a failed or broken run
    errors = open(os.path.join(folder, "children.err"), "ab")
    faults = {"worker kills": 0, "producer kills": 0, "redis restarts": 0}
    redis_away = []
    try:
        if backend == "redis":
            redis = RedisServer(folder, durable=True)
            redis.start()
            url = redis.url()
        else:
            url = "sqlite:///" + os.path.join(folder, "soak.db")
            jexkv.open_queue(url).close()  # create the file once, before the processes race
        until = time.time() + seconds
        children = Children(url, folder, until, rng, errors)
        open(children.runs, "ab").close()
        for _ in range(WORKERS):
            children.start_worker()
        for _ in range(PRODUCERS):
            children.start_producer()
        begin = time.monotonic()
        next_fault = begin + FAULT_EVERY_S
        restart_every = min(REDIS_RESTART_EVERY_S, seconds / 2)  # short runs restart too
        next_restart = begin + restart_every / 2
        next_note = begin + 10
        while time.time() < until:
            now = time.monotonic()
            if now >= next_fault:
                next_fault = now + FAULT_EVERY_S * rng.uniform(0.5, 1.5)
                if rng.random() < 0.75:
                    faults["worker kills"] += children.kill(children.workers)
                else:
                    faults["producer kills"] += children.kill(children.producers)
            if redis is not None and now >= next_restart and until - time.time() > 1:
                next_restart = now + restart_every * rng.uniform(0.75, 1.25)
                redis_away.append(redis.restart())
                faults["redis restarts"] += 1
            if now >= next_note:
                next_note = now + 10
                done = ", ".join(
                    f"{k} {v}" for k, v in faults.items() if v or k != "redis restarts"
                )
                print(f"  {backend}: {now - begin:.0f} s, {done}", flush=True)
            time.sleep(0.05)
        children.wait_producers(timeout=30)
        load_s = time.monotonic() - begin

        calls = [c for log in children.producer_logs for c in read_producer(log)]
        acked = {c[4] for c in calls if c[0] == "enqueue" and c[3] == "ok"}
        print(f"  {backend}: load done, draining {len(acked):,} acknowledged jobs", flush=True)
        starts, finishes, counts, drain_s = drain(
            url, children, children.runs, acked, DRAIN_TIMEOUT_S
        )
        children.stop_all()

        replay = KVReplay()
        for log in children.producer_logs:
            for op, key, arg, status, result in read_producer(log):
                if op != "enqueue":
                    replay.apply(op, key, arg, status, result)
        replay.check_final(final_values(url, replay.possible))

        enqueued = [c for c in calls if c[0] == "enqueue"]
        kv_calls = [c for c in calls if c[0] != "enqueue"]
        lost = sorted(job for job in acked if job not in finishes)
        left = {s: counts.get(s, "?") for s in ("waiting", "active", "delayed", "dead")}
        result = {
            "seconds": load_s,
            "drain": drain_s,
            "kv ok": sum(c[3] == "ok" for c in kv_calls),
            "kv unsure": sum(c[3] != "ok" for c in kv_calls),
            "enqueued": len(acked),
            "enqueue unsure": sum(c[3] != "ok" for c in enqueued),
            "runs started": sum(starts.values()),
            "runs finished": sum(finishes.values()),
            "jobs run": len(starts),
            "unacknowledged run": sum(1 for job in finishes if job not in acked),
            "duplicate runs": sum(n - 1 for n in starts.values()),
            "duplicate finishes": sum(n - 1 for n in finishes.values()),
            "faults": faults,
            "redis away": redis_away,
            "lost": lost,
            "left": left,
            "keys": len(replay.possible),
            "mismatches": replay.mismatches,
            "processes": children.started,
        }
        result["ops"] = result["kv ok"] + result["enqueued"] + result["runs finished"]
        result["failed"] = bool(lost or replay.mismatches or any(v != 0 for v in left.values()))
        if result["failed"]:
            errors.flush()
            print(f"  {backend}: FAILED", flush=True)
            for line in lost[:10]:
                print(f"    lost job {line}")
            for line in replay.mismatches[:10]:
                print(f"    KV mismatch: {line}")
            print(f"    left in the queue: {left}")
        keep = result["failed"]
        return result
    finally:
        if children is not None:
            children.stop_all()
        if redis is not None:
            redis.close()
        errors.close()
        if keep:
            print(f"  {backend}: logs kept in {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def table(results):
    names = list(results)

    def row(label, fn):
        return [label, *(fn(results[n]) for n in names)]

    def faults(r):
        return sum(r["faults"].values())

    def away(r):
        if not r["redis away"]:
            return "-"
        return f"{max(r['redis away']):.2f}"

    rows = [
        row("load (s)", lambda r: f"{r['seconds']:.0f}"),
        row("operations done", lambda r: f"{r['ops']:,}"),
        row("- KV calls acknowledged", lambda r: f"{r['kv ok']:,}"),
        row("- enqueues acknowledged", lambda r: f"{r['enqueued']:,}"),
        row("- job runs finished", lambda r: f"{r['runs finished']:,}"),
        row("faults injected", lambda r: f"{faults(r):,}"),
        row("- worker processes SIGKILLed", lambda r: f"{r['faults']['worker kills']:,}"),
        row("- producer processes SIGKILLed", lambda r: f"{r['faults']['producer kills']:,}"),
        row(
            "- redis-server SIGKILLed and restarted", lambda r: f"{r['faults']['redis restarts']:,}"
        ),
        row(
            "calls that raised or were cut by a kill",
            lambda r: f"{r['kv unsure'] + r['enqueue unsure']:,}",
        ),
        row("**jobs lost** (acknowledged, never finished)", lambda r: f"**{len(r['lost'])}**"),
        row(
            "jobs left in the queue after the drain",
            lambda r: str(sum(v if isinstance(v, int) else 1 for v in r["left"].values())),
        ),
        row("duplicate runs (starts beyond one per job)", lambda r: f"{r['duplicate runs']:,}"),
        row("- of which ran to the end again", lambda r: f"{r['duplicate finishes']:,}"),
        row(
            "runs of jobs whose enqueue was not acknowledged",
            lambda r: f"{r['unacknowledged run']:,}",
        ),
        row("**KV mismatches**", lambda r: f"**{len(r['mismatches'])}** of {r['keys']} keys"),
        row("drain after the load (s)", lambda r: f"{r['drain']:.1f}"),
        row("longest redis-server restart (s)", away),
    ]
    headers = ["soak", *(n if n == "sqlite" else "redis (appendfsync always)" for n in names)]
    return _report.markdown_table(headers, rows)


def report(results, seconds, skipped, command):
    lines = [
        "## Soak",
        "",
        *_report.machine_lines(command),
        "",
        (
            f"{seconds} s of mixed load per backend: {PRODUCERS} producer processes (a random mix"
            " of `enqueue`, `set`, `incr` and `set`+`pop`, 40% enqueues, on keys of their own),"
            f" {WORKERS} worker processes of {THREADS} handler threads (`lease_ms={LEASE_MS}`)."
            f" About every {FAULT_EVERY_S:.0f} s a random worker (3 times in 4) or producer is"
            " SIGKILLed and replaced; on Redis the server is also SIGKILLed and restarted about"
            f" every {REDIS_RESTART_EVERY_S:.0f} s, and the clients reconnect by themselves."
            " Then the workers drain the queue. A job is lost when its enqueue returned but it"
            " never finished a run; KV values are checked against each producer's log (a call"
            " that raised or was cut by a kill may or may not have happened). Duplicate runs are"
            " at-least-once delivery at work: the jobs a killed worker held run again."
        ),
        "",
        table(results),
    ]
    lines += [f"- {name}: skipped, {why}" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="load per backend (default 60)")
    parser.add_argument("--backend", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--seed", type=int, default=1, help="seed of the faults and the load")
    parser.add_argument("--quick", action="store_true", help="5 s per backend; never writes")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    for flag in ("--child", "--url", "--log", "--id", "--until"):  # the child processes'
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.until = float(args.until or 0)
        return child_main(args)
    seconds = 5 if args.quick else args.seconds
    backends = ["sqlite", "redis"] if args.backend == "all" else [args.backend]
    skipped = {}
    if "redis" in backends and not shutil.which("redis-server"):
        if args.backend == "redis":
            parser.error("redis-server is not on PATH")
        backends.remove("redis")
        skipped["redis"] = "redis-server is not on PATH"
    results = {}
    for i, backend in enumerate(backends):
        print(f"soak: {backend}, {seconds:g} s, seed {args.seed}", flush=True)
        results[backend] = run_backend(backend, seconds, args.seed + i)
    body = report(results, f"{seconds:g}", skipped, _report.command_line("soak.py"))
    if args.backend != "all" and not (args.quick or args.no_write):
        args.no_write = True  # the section shows both backends: a single one does not replace it
    _report.publish("soak", body, args)
    failed = [name for name, r in results.items() if r["failed"]]
    if failed:
        print(f"soak FAILED on {', '.join(failed)}: jobs lost, left over or KV mismatches")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
