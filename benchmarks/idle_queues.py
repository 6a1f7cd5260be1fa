"""Idle queues: what many idle queues cost one worker process, and how fast an idle worker picks a
job up, per adapter.

    python benchmarks/idle_queues.py              # memory, sqlite, redis x 1, 100, 1000 queues
    python benchmarks/idle_queues.py --no-write   # print only
    python benchmarks/idle_queues.py --quick      # 1 and 100 queues, 50 pickups; never writes
    python benchmarks/idle_queues.py --adapters sqlite,redis --counts 1000

Each (adapter, N) runs in a fresh process (this file again, with the hidden --case flag), which
prints its measures as JSON for this one to collect. The case process opens one TaskQueue and
registers a worker with ``concurrency=1`` on each of N queues ``q0``..``q{N-1}`` (the handler
records when it started and returns None), then lets it settle (at least SETTLE_S, and until its
thread and connection counts stop moving, at most SETTLE_MAX_S). Then it measures:

* CPU: the process's CPU time (user + system, ``time.process_time``) over an idle window of
  CPU_WINDOW_S seconds, as a percentage of one core;
* RSS: VmRSS (/proc/self/status) after settling, and its growth over the RSS just before the
  workers were registered (the TaskQueue already open);
* threads: ``threading.active_count()``;
* connections: redis: the clients the server lists (CLIENT LIST) whose address is a TCP socket of
  this process, without the measuring connection; sqlite: the file descriptors of this process
  open on the .db file (one per SQLite connection); memory: 0;
* pickup latency: jobs sent one at a time, each to a random one of the N queues after a random
  2-20 ms pause (so a polling worker is caught at a random point of its poll), each only after
  the previous one has started; from just after ``enqueue`` returned to the first line of the
  handler, p50 / p99 in ms. (a) From this process: ``time.perf_counter()`` on both sides. (b) For
  sqlite and redis, from another process: a producer subprocess (this file with --producer)
  enqueues on command and writes back the job id and ``time.time()`` just after ``enqueue``
  returned, and the handler's own ``time.time()`` is compared with it (the same wall clock of
  one machine). A pickup phase that runs longer than its budget stops early and reports the
  samples it has (``n=``). The first WARMUP pickups of each phase are not counted.

Everything has a timeout: a job not picked up in PICKUP_TIMEOUT_S ends its phase, a case process
that runs longer than its budget is killed (what it had printed so far is kept), and the producer
is stopped (its stdin closed, then killed) when its phase ends or its case process dies.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import _report  # puts the repo root first on sys.path
from _redis import HOST, RedisServer

import jexkv
import jexkv.resp

ADAPTERS = ("memory", "sqlite", "redis")
COUNTS = (1, 100, 1000)
QUICK_COUNTS = (1, 100)
TASK = "noop"
WARMUP = 5
PICKUP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0  # the producer process opening its TaskQueue
SETTLE_S = 2.0
SETTLE_MAX_S = 30.0
STABLE_S = 1.0  # the counts unchanged this long: settled
CPU_WINDOW_S = 20.0  # twice the engine's idle wake-up (worker._IDLE_WAIT_S), so the windows see it
PHASE_BUDGET_S = 45.0  # one pickup phase, at most
CASE_TIMEOUT_S = 180.0
QUICK = {"settle": 1.0, "window": 2.0, "phase": 15.0, "case": 90.0}


# -- the measures (the case process's side) -------------------------------------------------


def rss_mb() -> float:
    """VmRSS of this process, in MB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def open_fds() -> dict:
    """{fd: what it points at} for this process's open file descriptors."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (the listing's own fd, too)
            pass
    return found


def sqlite_connections(db_path: str) -> int:
    """File descriptors of this process open on the .db file itself: one per SQLite connection."""
    target = os.path.realpath(db_path)
    return sum(1 for link in open_fds().values() if link == target)


def own_tcp_ports() -> set:
    """The local ports of this process's TCP sockets (its fds matched with /proc/net/tcp)."""
    inodes = {link[8:-1] for link in open_fds().values() if link.startswith("socket:[")}
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)  # the header
                for line in f:
                    fields = line.split()
                    if fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


class RedisMonitor:
    """One connection of its own to the server, to count this process's other clients there."""

    def __init__(self, port: int):
        self.conn = jexkv.resp.Redis(HOST, port, db=0).new_connection()
        self.conn.connect()
        self.id = int(self.conn.execute("CLIENT", "ID"))

    def flushdb(self) -> None:
        self.conn.execute("FLUSHDB")

    def clients(self) -> int:
        """Clients the server lists from a TCP port of this process, without this monitor."""
        ports = own_tcp_ports()
        listing = self.conn.execute("CLIENT", "LIST")
        if isinstance(listing, bytes):
            listing = listing.decode("utf-8", "replace")
        count = 0
        for line in listing.splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            addr = fields.get("addr", "")
            if fields.get("id") == str(self.id) or ":" not in addr:
                continue
            host, port = addr.rsplit(":", 1)
            if host in (HOST, "::1", "[::1]") and int(port) in ports:
                count += 1
        return count

    def close(self) -> None:
        self.conn.close()


class Started:
    """What the handler records: (queue, job id) -> (perf_counter, time.time()) at its start."""

    def __init__(self):
        self.cond = threading.Condition()
        self.times = {}

    def handler(self, job):
        t = (time.perf_counter(), time.time())
        with self.cond:
            self.times[(job.queue, job.id)] = t
            self.cond.notify_all()
        return None

    def wait_for(self, key, timeout: float):
        """The start times of that job, or None when it has not started within ``timeout``."""
        with self.cond:
            if self.cond.wait_for(lambda: key in self.times, timeout):
                return self.times[key]
        return None


class LogCount(logging.Handler):
    """Counts the jexkv logger's warnings and errors during a case, keeping the first few."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count, self.first = 0, []
        logging.getLogger("jexkv").addHandler(self)

    def emit(self, record):
        self.count += 1
        if len(self.first) < 3:
            self.first.append(f"{record.levelname}: {record.getMessage()}"[:300])


def percentiles(samples_ms):
    """(p50, p99) by nearest rank."""
    ordered = sorted(samples_ms)

    def rank(p):
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return rank(50), rank(99)


def summary(latencies, error=None) -> dict:
    out = {"n": len(latencies), "error": error}
    if latencies:
        out["p50"], out["p99"] = percentiles(latencies)
    return out


def settle(footprint, minimum: float, maximum: float) -> float:
    """Sleep ``minimum`` s, then until ``footprint()`` has not changed for STABLE_S (at most
    ``maximum`` s in all); the seconds it took."""
    start = time.monotonic()
    time.sleep(minimum)
    last, since = footprint(), time.monotonic()
    while time.monotonic() - start < maximum:
        time.sleep(0.25)
        now = footprint()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= STABLE_S:
            break
    return time.monotonic() - start


def late(i: int, name: str) -> str:
    return f"job {i} on {name} not picked up in {PICKUP_TIMEOUT_S:.0f} s"


def pickup_same_process(q, started, names, count, rng, budget_s) -> dict:
    """Pickup latencies (ms) of jobs enqueued from this process, one at a time."""
    latencies, deadline = [], time.monotonic() + budget_s
    for i in range(WARMUP + count):
        if time.monotonic() > deadline:
            return summary(latencies, f"stopped after its {budget_s:.0f} s budget")
        time.sleep(rng.uniform(0.002, 0.020))
        name = rng.choice(names)
        job = q.enqueue(name, TASK)
        t = time.perf_counter()
        times = started.wait_for((name, job.id), PICKUP_TIMEOUT_S)
        if times is None:
            return summary(latencies, late(i, name))
        if i >= WARMUP:
            latencies.append((times[0] - t) * 1000)
    return summary(latencies)


class Lines:
    """The lines a child process writes, read on a thread, with a timeout on each."""

    def __init__(self, stream):
        self.cond, self.lines, self.done = threading.Condition(), [], False
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        try:
            for line in stream:
                with self.cond:
                    self.lines.append(line.strip())
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def get(self, timeout: float):
        """The next line, or None at the end of the stream or after ``timeout`` s."""
        with self.cond:
            self.cond.wait_for(lambda: self.lines or self.done, timeout)
            return self.lines.pop(0) if self.lines else None


def stop_process(child) -> None:
    """Close its stdin (its cue to finish), wait a little, then kill it."""
    try:
        if child.stdin and not child.stdin.closed:
            child.stdin.close()
    except OSError:
        pass
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def pickup_other_process(url, started, names, count, rng, budget_s) -> dict:
    """Pickup latencies (ms) of jobs a producer process enqueues on command, one at a time."""
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--producer", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=_report.REPO_ROOT,
    )
    latencies = []
    try:
        lines = Lines(child.stdout)
        if lines.get(READY_TIMEOUT_S) != "ready":
            return summary(latencies, "the producer process did not start")
        deadline = time.monotonic() + budget_s
        for i in range(WARMUP + count):
            if time.monotonic() > deadline:
                return summary(latencies, f"stopped after its {budget_s:.0f} s budget")
            time.sleep(rng.uniform(0.002, 0.020))
            name = rng.choice(names)
            child.stdin.write(name + "\n")
            child.stdin.flush()
            line = lines.get(PICKUP_TIMEOUT_S)
            if line is None:
                return summary(latencies, f"job {i}: the producer did not answer")
            job_id, sent = line.split()
            times = started.wait_for((name, job_id), PICKUP_TIMEOUT_S)
            if times is None:
                return summary(latencies, late(i, name))
            if i >= WARMUP:
                latencies.append((times[1] - float(sent)) * 1000)
    finally:
        stop_process(child)
    return summary(latencies)


def producer(url: str) -> None:
    """The producer process: enqueue one job on each queue name read from stdin, answer
    "job_id time.time()" (taken just after enqueue returned); stop at the end of stdin."""
    with jexkv.open_queue(url) as q:
        out = sys.stdout
        out.write("ready\n")
        out.flush()
        while True:
            name = sys.stdin.readline()
            if not name:
                break
            job = q.enqueue(name.strip(), TASK)
            t = time.time()
            out.write(f"{job.id} {t!r}\n")
            out.flush()


def emit(result: dict) -> None:
    """What is measured so far, as one JSON line (the parent keeps the last one)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_case(adapter: str, n: int, folder: str, port: int, pickups: int, quick: bool) -> None:
    settle_s = QUICK["settle"] if quick else SETTLE_S
    window_s = QUICK["window"] if quick else CPU_WINDOW_S
    budget_s = QUICK["phase"] if quick else PHASE_BUDGET_S
    result = {"adapter": adapter, "n": n, "done": False}
    logs = LogCount()
    monitor = RedisMonitor(port) if adapter == "redis" else None
    db_path = os.path.join(folder, "idle.db")
    if adapter == "memory":
        url, connections = "memory://", lambda: 0
    elif adapter == "sqlite":
        url, connections = "sqlite:///" + db_path, lambda: sqlite_connections(db_path)
    else:
        monitor.flushdb()
        url, connections = f"redis://{HOST}:{port}/0", monitor.clients
    rng = random.Random(n)
    names = [f"q{i}" for i in range(n)]
    started = Started()
    try:
        result["connections_before"] = connections()
        q = jexkv.open_queue(url)
        try:
            result["rss_base_mb"] = rss_mb()
            result["threads_base"] = threading.active_count()
            t0 = time.perf_counter()
            for name in names:
                q.register_worker(name, started.handler, concurrency=1)
            result["register_s"] = time.perf_counter() - t0
            print(f"  {adapter} x {n}: registered in {result['register_s']:.1f} s", file=sys.stderr)

            def footprint():
                return connections(), threading.active_count()

            result["settle_s"] = settle(footprint, settle_s, SETTLE_MAX_S)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            time.sleep(window_s)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            result["cpu_pct"] = 100 * cpu / wall
            result["rss_mb"] = rss_mb()
            result["threads"] = threading.active_count()
            result["connections"] = connections()
            result["fds"] = len(open_fds())
            result["fd_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            emit(result)
            print(f"  {adapter} x {n}: idle measured", file=sys.stderr)

            result["same"] = pickup_same_process(q, started, names, pickups, rng, budget_s)
            emit(result)
            if adapter != "memory":
                result["other"] = pickup_other_process(url, started, names, pickups, rng, budget_s)
                emit(result)
        finally:
            t0 = time.perf_counter()
            q.close(timeout_ms=15_000)
            result["close_s"] = time.perf_counter() - t0
    finally:
        if monitor is not None:
            monitor.close()
    result["log_count"], result["log_first"] = logs.count, logs.first
    result["done"] = True
    emit(result)


# -- the parent: run the cases, print and write the table ---------------------------------------


def run_child(case: str, folder: str, port: int, pickups: int, quick: bool) -> dict:
    """Run one case in a fresh process; its last JSON line, with "error" when it failed."""
    command = [sys.executable, os.path.abspath(__file__), "--case", case, "--folder", folder]
    command += ["--port", str(port), "--n", str(pickups), *(["--quick"] if quick else [])]
    timeout = QUICK["case"] if quick else CASE_TIMEOUT_S
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=_report.REPO_ROOT)
    error = None
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
        error = f"killed after {timeout:.0f} s"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if error is None and child.returncode:
        error = f"exited with {child.returncode}"
    if error is None and not result.get("done"):
        error = "no result"
    adapter, n = case.split(":")
    return {"adapter": adapter, "n": int(n), **result, "error": error}


def cell_latency(phase) -> str:
    if phase is None:
        return "not run"
    if "p50" not in phase:
        return "failed"
    text = f"{phase['p50']:.2f} / {phase['p99']:.2f}"
    return text + (f" (n={phase['n']})" if phase.get("error") else "")


def cell(row, key, fmt) -> str:
    value = row.get(key)
    return "n/a" if value is None else format(value, fmt)


def table(rows) -> str:
    headers = [
        "adapter",
        "idle queues",
        "register s",
        "CPU % of a core",
        "RSS MB (growth)",
        "threads",
        "connections",
        "pickup p50 / p99 ms, same process",
        "pickup p50 / p99 ms, other process",
    ]
    cells = []
    for row in rows:
        rss = cell(row, "rss_mb", ".1f")
        if "rss_mb" in row:
            rss += f" (+{row['rss_mb'] - row['rss_base_mb']:.1f})"
        cells.append(
            [
                row["adapter"],
                f"{row['n']:,}",
                cell(row, "register_s", ".2f"),
                cell(row, "cpu_pct", ".1f"),
                rss,
                cell(row, "threads", "d"),
                cell(row, "connections", "d"),
                cell_latency(row.get("same")),
                cell_latency(row.get("other")) if row["adapter"] != "memory" else "n/a",
            ]
        )
    return _report.markdown_table(headers, cells)


def notes(rows, skipped) -> list:
    lines = [f"- {adapter}: skipped, {why}" for adapter, why in skipped.items()]
    for row in rows:
        where = f"{row['adapter']} x {row['n']:,}"
        if row.get("error"):
            lines.append(f"- {where}: {row['error']}")
        for phase in ("same", "other"):
            if (row.get(phase) or {}).get("error"):
                lines.append(f"- {where}, pickups from the {phase} process: {row[phase]['error']}")
        if row.get("log_count"):
            first = "; ".join(row["log_first"])
            lines.append(f"- {where}: {row['log_count']} jexkv warnings/errors, first: {first}")
        if row.get("fds", 0) > 0.8 * row.get("fd_limit", math.inf):
            lines.append(f"- {where}: {row['fds']} open fds of a limit of {row['fd_limit']}")
        if row.get("settle_s", 0) >= SETTLE_MAX_S:
            lines.append(f"- {where}: still moving after settling for {SETTLE_MAX_S:.0f} s")
    return lines


def report(rows, skipped, pickups, quick, command) -> str:
    settle_s = QUICK["settle"] if quick else SETTLE_S
    window_s = QUICK["window"] if quick else CPU_WINDOW_S
    extra = notes(rows, skipped)
    lines = [
        "## Idle queues",
        "",
        *_report.machine_lines(command),
        "",
        (
            "One TaskQueue per process, a worker with `concurrency=1` on each of N queues, every"
            " case in a fresh process. After settling (at least"
            f" {settle_s:.0f} s, until the thread and connection counts stop moving): the"
            f" process's CPU time over {window_s:.0f} idle seconds as % of one core; VmRSS, and"
            " its growth since just before the workers were registered; `threading.active_count()`;"
            " connections: Redis clients from this process (CLIENT LIST), SQLite connections"
            " (fds open on the .db file). `register s`: the N `register_worker` calls."
        ),
        "",
        (
            f"Pickup latency: {pickups} jobs sent one at a time (after {WARMUP} uncounted), each"
            " to a random one of the N queues after a random 2-20 ms pause, from just after"
            " `enqueue` returned to the first line of the handler; from the same process"
            " (`perf_counter`), and from a producer subprocess on the same SQLite file or Redis db"
            " (`time.time()` on both sides). `(n=…)`: the phase stopped early, see the notes."
        ),
        "",
        table(rows),
        "",
        *extra,
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run; never writes")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--n", type=int, default=None, help="pickups per measure (default 200)")
    parser.add_argument("--adapters", default=",".join(ADAPTERS), help="default: %(default)s")
    parser.add_argument("--counts", default=None, help="idle queues per case (default 1,100,1000)")
    parser.add_argument("--json", metavar="PATH", help="also save every case's raw measures")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a case process: ADAPTER:N
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--producer", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pickups = args.n or (50 if args.quick else 200)
    if args.producer:
        producer(args.producer)
        return
    if args.case:
        adapter, n = args.case.split(":")
        run_case(adapter, int(n), args.folder, args.port, pickups, args.quick)
        return

    adapters = [a.strip() for a in args.adapters.split(",") if a.strip()]
    unknown = set(adapters) - set(ADAPTERS)
    if unknown:
        parser.error(f"unknown adapters: {', '.join(sorted(unknown))}")
    if args.counts:
        counts = [int(c) for c in args.counts.split(",")]
    else:
        counts = list(QUICK_COUNTS if args.quick else COUNTS)
    skipped = {}
    if "redis" in adapters and not shutil.which("redis-server"):
        skipped["redis"] = "redis-server is not installed"
        adapters.remove("redis")

    print(f"idle queues: {', '.join(adapters)} x {counts} queues, {pickups} pickups", flush=True)
    rows, began = [], time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="jexkv-bench-"))
        port = stack.enter_context(RedisServer(folder)).port if "redis" in adapters else 0
        for adapter in adapters:
            for n in counts:
                case_folder = tempfile.mkdtemp(prefix=f"{adapter}-{n}-", dir=folder)
                rows.append(run_child(f"{adapter}:{n}", case_folder, port, pickups, args.quick))
                status = rows[-1]["error"] or "done"
                took = time.monotonic() - began
                print(f"{adapter} x {n}: {status} ({took:.0f} s in all)", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    body = report(rows, skipped, pickups, args.quick, _report.command_line("idle_queues.py"))
    _report.publish("idle_queues", body, args)


if __name__ == "__main__":
    main()
