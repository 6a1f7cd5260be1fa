"""asyncio benchmark: jexkv.aio and jexkv's asyncio Redis client side by side with redis.asyncio
(redis-py), arq, saq, taskiq-redis and bullmq (the Python port), on one redis-server.

    python benchmarks/aio.py              # full run, rewrites the aio section of BENCHMARKS.md
    python benchmarks/aio.py --no-write   # print only
    python benchmarks/aio.py --quick      # smoke run (small n, never writes)

The script starts its own ``redis-server`` (no persistence, a temporary folder, a free port on
127.0.0.1) and stops it at the end; every contender runs in this process on one event loop.

KV, one client each, 3-byte values: N ``SET`` then N ``GET`` one ``await`` at a time (each a
round trip), then the same with 100 tasks at once (``asyncio.gather`` of 100 calls, N/100
times). Contenders: jexkv's ``AsyncRedis.execute_command`` (auto-pipelined), the ``jexkv.aio``
KV store (``kv.get``/``kv.set``: JSON values in a namespace), ``redis.asyncio`` with its
pure-Python parser (forced) and with hiredis; and, one call at a time without a loop, jexkv's
sync client and sync KV store. ``redis-benchmark -c 1 -P 16`` is the C limit for the
concurrent phase. Best of a few rounds, interleaved.

Queues: N no-op jobs enqueued one ``await`` at a time (enqueue/s), then a worker started in the
same process with concurrency 4 and 50, timed until every job has run (processed/s); then
I/O-bound jobs (``await asyncio.sleep(0.01)``, concurrency 50, ideal 5,000/s); then the pickup
latency of an idle async worker (enqueue -> handler start, one job at a time). jexkv runs its
``jexkv.aio`` Redis queue with an ``async def`` handler; the peers are in _aio_queue_peers.py.
"""

import asyncio
import gc
import shutil
import statistics
import tempfile
import time

import _report  # found in benchmarks/; puts the repo root first on sys.path
from _redis import RedisServer
from resp import BENCH_PIPELINE, redis_benchmark, tool_version

import jexkv
import jexkv.aio
from jexkv.resp import Redis
from jexkv.resp.aio_client import AsyncRedis

VALUE = "xxx"
BATCH = 100  # tasks at once in the concurrent phase
PHASES = ("set_one", "get_one", "set_100", "get_100")


# --- KV contenders: async ones ----------------------------------------------------------------


class JexkvClient:
    name = "jexkv AsyncRedis"

    def __init__(self, url):
        self.client = AsyncRedis.from_url(url)
        self.set, self.get = self._set, self._get

    async def _set(self, key, value):
        return await self.client.execute_command("SET", key, value)

    async def _get(self, key):
        return await self.client.execute_command("GET", key)

    async def close(self):
        await self.client.aclose()


class JexkvStore:
    name = "jexkv.aio KV store"

    def __init__(self, url):
        self.kv = jexkv.aio.open_kv(url)
        self.set, self.get = self.kv.set, self.kv.get

    async def close(self):
        await self.kv.aclose()


class RedisAsyncio:
    name = "redis.asyncio (pure-Python parser)"
    requires = "redis"
    parser = "_AsyncRESP2Parser"

    def __init__(self, url):
        import redis._parsers
        import redis.asyncio

        parser = getattr(redis._parsers, self.parser)
        pool = redis.asyncio.ConnectionPool.from_url(url, protocol=2, parser_class=parser)
        self.client = redis.asyncio.Redis(connection_pool=pool)
        self.set, self.get = self.client.set, self.client.get

    async def close(self):
        await self.client.aclose()


class RedisAsyncioHiredis(RedisAsyncio):
    name = "redis.asyncio (hiredis)"
    requires = "hiredis"
    parser = "_AsyncHiredisParser"


ASYNC_KV = [JexkvClient, JexkvStore, RedisAsyncio, RedisAsyncioHiredis]
CEILING = "asyncio's own ceiling (a bare Protocol, no parsing)"


class _Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.waiting = transport, None

    def data_received(self, data):
        self.waiting.set_result(data)


async def asyncio_ceiling(url, n):
    """One command at a time over a bare asyncio Protocol that parses nothing: what the event
    loop itself allows here (the rate no asyncio client can pass on this machine)."""
    loop = asyncio.get_running_loop()
    host, port = url.split("//")[1].split("/")[0].split(":")
    transport, bare = await loop.create_connection(_Bare, host, int(port))
    seconds = {}
    try:
        for phase, command in (("set_one", b"SET"), ("get_one", b"GET")):
            packed = b"*3\r\n$3\r\n" + command + b"\r\n$1\r\nk\r\n$3\r\nxxx\r\n"
            if command == b"GET":
                packed = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
            started = time.perf_counter()
            for _ in range(n):
                bare.waiting = loop.create_future()
                transport.write(packed)
                await bare.waiting
            seconds[phase] = time.perf_counter() - started
    finally:
        transport.close()
    return seconds


async def sleep_ceiling(n, concurrency):
    """jobs/s of ``concurrency`` tasks each running ``await asyncio.sleep(0.01)`` n times in
    all, with no queue at all: asyncio's own ceiling for the I/O-bound jobs."""
    left = [n]

    async def task():
        while left[0] > 0:
            left[0] -= 1
            await asyncio.sleep(0.01)

    started = time.perf_counter()
    await asyncio.gather(*[task() for _ in range(concurrency)])
    return n / (time.perf_counter() - started)


async def run_async_kv(contender, url, n):
    """Seconds of each phase for one round of one async contender (values checked)."""
    client = contender(url)
    keys = [f"k{i}" for i in range(n)]
    seconds = {}
    try:
        await client.set("warm", VALUE)
        started = time.perf_counter()
        for key in keys:
            await client.set(key, VALUE)
        seconds["set_one"] = time.perf_counter() - started
        started = time.perf_counter()
        for key in keys:
            last = await client.get(key)
        seconds["get_one"] = time.perf_counter() - started
        batches = [keys[i : i + BATCH] for i in range(0, n, BATCH)]
        started = time.perf_counter()
        for batch in batches:
            await asyncio.gather(*[client.set(key, VALUE) for key in batch])
        seconds["set_100"] = time.perf_counter() - started
        started = time.perf_counter()
        for batch in batches:
            got = await asyncio.gather(*[client.get(key) for key in batch])
        seconds["get_100"] = time.perf_counter() - started
    finally:
        await client.close()
    if last not in (VALUE, VALUE.encode()) or set(got) - {VALUE, VALUE.encode()}:
        raise RuntimeError(f"{contender.name}: read {last!r} / {set(got)!r}")
    return seconds


# --- KV contenders: sync, for the ratio to jexkv's own sync client -----------------------------


def run_sync_kv(name, url, n):
    if name == "jexkv sync client":
        client = Redis.from_url(url)
        set_, get = (
            (lambda k, v: client.execute_command("SET", k, v)),
            (lambda k: client.execute_command("GET", k)),
        )
        close = client.close
    else:
        kv = jexkv.open_kv(url)
        set_, get, close = kv.set, kv.get, kv.close
    keys = [f"k{i}" for i in range(n)]
    try:
        started = time.perf_counter()
        for key in keys:
            set_(key, VALUE)
        set_s = time.perf_counter() - started
        started = time.perf_counter()
        for key in keys:
            get(key)
        get_s = time.perf_counter() - started
    finally:
        close()
    return {"set_one": set_s, "get_one": get_s}


SYNC_KV = ["jexkv sync client", "jexkv sync KV store"]


def flush(url):
    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")


def kv_rounds(url, n, rounds):
    runnable, skipped = _report.split_runnable(ASYNC_KV)
    best = {}
    for _ in range(rounds):
        for contender in runnable:
            flush(url)
            gc.collect()
            seconds = asyncio.run(run_async_kv(contender, url, n))
            rates = {phase: n / s for phase, s in seconds.items()}
            mine = best.setdefault(contender.name, {})
            for phase, rate in rates.items():
                mine[phase] = max(mine.get(phase, 0.0), rate)
        mine = best.setdefault(CEILING, {})
        for phase, s in asyncio.run(asyncio_ceiling(url, n)).items():
            mine[phase] = max(mine.get(phase, 0.0), n / s)
        for name in SYNC_KV:
            flush(url)
            gc.collect()
            mine = best.setdefault(name, {})
            for phase, s in run_sync_kv(name, url, n).items():
                mine[phase] = max(mine.get(phase, 0.0), n / s)
    return best, skipped


# --- queues -------------------------------------------------------------------------------------


class JexkvQueue:
    name = "jexkv.aio Redis queue"

    async def run(self, url, n, concurrency, job):
        q = jexkv.aio.open_queue(url)
        done, ran = asyncio.Event(), [0]

        async def handle(j):
            if job == "sleep10":
                await asyncio.sleep(0.01)
            ran[0] += 1
            if ran[0] == n:
                done.set()

        try:
            started = time.perf_counter()
            for i in range(n):
                await q.enqueue("bench", "job", i)
            enqueue = n / (time.perf_counter() - started)
            started = time.perf_counter()
            q.register_worker("bench", handle, concurrency=concurrency)
            await asyncio.wait_for(done.wait(), 120)
            process = n / (time.perf_counter() - started)
        finally:
            await q.aclose()
        return {"enqueue": enqueue, "process": process}


async def pickup_latency(url, samples):
    """ms from enqueue to handler start, one job at a time, for an idle async worker."""
    q = jexkv.aio.open_queue(url)
    started_at = {}
    got = asyncio.Event()

    async def handle(job):
        started_at[job.payload] = time.perf_counter()
        got.set()

    q.register_worker("latency", handle)
    lat = []
    try:
        await asyncio.sleep(0.2)  # the worker is idle, waiting on its marker
        for i in range(samples):
            got.clear()
            sent = time.perf_counter()
            await q.enqueue("latency", "ping", i)
            await asyncio.wait_for(got.wait(), 10)
            lat.append((started_at[i] - sent) * 1000)
            await asyncio.sleep(0.005)
    finally:
        await q.aclose()
    return lat


QUEUE_RUNS = [(4, "noop"), (50, "noop"), (50, "sleep10")]


def queue_rounds(url, n, rounds):
    import _aio_queue_peers

    runnable, skipped = _report.split_runnable(_aio_queue_peers.PEERS)
    contenders = [JexkvQueue(), *(peer() for peer in runnable)]
    best = {}
    for _ in range(rounds):
        for concurrency, job in QUEUE_RUNS:
            jobs = n if job == "noop" else min(n, 2000)
            for contender in contenders:
                flush(url)
                gc.collect()
                try:
                    rates = asyncio.run(contender.run(url, jobs, concurrency, job))
                except Exception as exc:  # a peer that breaks is reported, not fatal
                    skipped[contender.name] = f"failed: {type(exc).__name__}: {exc}"
                    continue
                mine = best.setdefault((contender.name, concurrency, job), {})
                for key, rate in rates.items():
                    mine[key] = max(mine.get(key, 0.0), rate)
    flush(url)
    latency = asyncio.run(pickup_latency(url, 50 if n < 5000 else 300))
    ceiling = max(asyncio.run(sleep_ceiling(min(n, 2000), 50)) for _ in range(rounds))
    return best, skipped, latency, ceiling


# --- the report ---------------------------------------------------------------------------------


def _rate(value):
    return f"{value:,.0f}" if value else "n/a"


def report(n, qn, rounds, kv, kv_skipped, bench, queues, q_skipped, latency, ceiling, versions,
           command):  # fmt: skip
    lines = [f"## asyncio ({command})", "", *_report.machine_lines(command), ""]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    lines += ["", f"### Redis KV: N={n:,}, best of {rounds} (ops/s)", ""]
    rows = []
    for name, rates in kv.items():
        rows.append([name, *(_rate(rates.get(p)) for p in PHASES)])
    rows.append([f"redis-benchmark -c 1 -P {BENCH_PIPELINE}", "", "", *map(_rate, bench)])
    headers = ["client", "SET one at a time", "GET one at a time", "SET 100 at once",
               "GET 100 at once"]  # fmt: skip
    lines += [_report.markdown_table(headers, rows), ""]
    for name, why in kv_skipped.items():
        lines.append(f"- {name}: skipped, {why}")

    def kv_ratio(a, b, phase):
        x, y = kv.get(a, {}).get(phase), kv.get(b, {}).get(phase)
        return x / y if x and y else None

    one = ("get_one", "set_one")
    for mine in ("jexkv AsyncRedis", "jexkv.aio KV store"):
        sync = "jexkv sync client" if mine == "jexkv AsyncRedis" else "jexkv sync KV store"
        for phase in one:
            verb = phase.split("_")[0].upper()
            lines.append(
                _report.ratio_line(
                    f"{mine} / redis.asyncio (pure-Python), {verb} one at a time",
                    kv_ratio(mine, "redis.asyncio (pure-Python parser)", phase),
                    2.0,
                )
            )
            lines.append(
                _report.ratio_line(
                    f"{mine} / redis.asyncio (hiredis), {verb} one at a time",
                    kv_ratio(mine, "redis.asyncio (hiredis)", phase),
                    1.5,
                )
            )
            lines.append(
                _report.ratio_line(
                    f"{mine} / {sync}, {verb} one at a time", kv_ratio(mine, sync, phase), 0.6
                )
            )
    for phase, c_rate in zip(("set_100", "get_100"), bench):
        verb = phase.split("_")[0].upper()
        lines.append(
            _report.ratio_line(
                f"jexkv AsyncRedis / redis.asyncio (hiredis), {verb} 100 at once",
                kv_ratio("jexkv AsyncRedis", "redis.asyncio (hiredis)", phase),
                5.0,
            )
        )
        mine = kv.get("jexkv AsyncRedis", {}).get(phase)
        lines.append(_report.ratio_line(
            f"jexkv AsyncRedis / redis-benchmark -c 1 -P {BENCH_PIPELINE}, {verb} 100 at once",
            mine / c_rate if mine and c_rate else None, 0.5))  # fmt: skip

    lines += ["", f"### Redis queues: N={qn:,} jobs (2,000 for sleeping jobs), best of "
              f"{rounds} (jobs/s)", ""]  # fmt: skip
    rows = []
    for (name, concurrency, job), rates in queues.items():
        label = "no-op" if job == "noop" else "await sleep(0.01)"
        rows.append([name, concurrency, label, _rate(rates["enqueue"]), _rate(rates["process"])])
    headers = ["queue", "concurrency", "job", "enqueued/s", "processed/s"]
    lines += [_report.markdown_table(headers, rows), ""]
    for name, why in q_skipped.items():
        lines.append(f"- {name}: {why}")
    for concurrency in (4, 50):
        mine = queues.get(("jexkv.aio Redis queue", concurrency, "noop"), {})
        peers = [
            rates
            for (name, c, job), rates in queues.items()
            if c == concurrency and job == "noop" and name != JexkvQueue.name
        ]
        for key, target in (("process", 5.0), ("enqueue", 2.0)):
            best_peer = max((r[key] for r in peers), default=None)
            value = mine.get(key) / best_peer if mine.get(key) and best_peer else None
            lines.append(_report.ratio_line(
                f"jexkv / the best peer, {key}, no-op jobs, concurrency {concurrency}",
                value, target, missing="no peer ran"))  # fmt: skip
    peer_enqueue = max((rates["enqueue"] for (name, _, _), rates in queues.items()
                        if name != JexkvQueue.name), default=None)  # fmt: skip
    round_trip = kv.get(CEILING, {}).get("set_one")
    if peer_enqueue and round_trip:
        lines.append(f"- an enqueue one `await` at a time is one round trip: 2x the best peer "
                     f"({2 * peer_enqueue:,.0f}/s) against asyncio's own one-round-trip ceiling "
                     f"here ({round_trip:,.0f}/s, a bare Protocol, no parsing)")  # fmt: skip
    sleepy = queues.get(("jexkv.aio Redis queue", 50, "sleep10"), {}).get("process")
    lines.append(_report.ratio_line(
        "jexkv / the ideal 5,000 jobs/s, await sleep(0.01) jobs, concurrency 50",
        sleepy / 5000 if sleepy else None, 0.8))  # fmt: skip
    lines.append(f"- asyncio's own ceiling for those jobs here (50 tasks sleeping, no queue): "
                 f"{ceiling:,.0f} jobs/s, {ceiling / 5000:.2f}x the ideal")  # fmt: skip
    for phase in one:
        verb = phase.split("_")[0].upper()
        ours = kv_ratio("jexkv AsyncRedis", CEILING, phase) or 0
        theirs = kv_ratio("redis.asyncio (pure-Python parser)", CEILING, phase) or 0
        lines.append(f"- {CEILING}, {verb} one at a time: jexkv AsyncRedis reaches {ours:.2f}x "
                     f"of it, redis.asyncio (pure-Python) {theirs:.2f}x")  # fmt: skip
    p50 = statistics.median(latency)
    p99 = sorted(latency)[int(len(latency) * 0.99) - 1]
    lines += ["", f"Pickup latency of an idle async jexkv worker ({len(latency)} jobs, one at a "
              f"time): p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p50 <= 2 ms: "
              f"{'met' if p50 <= 2 else 'MISSED'})."]  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "commands per KV phase")
    args = parser.parse_args(argv)
    n = args.n or (1_000 if args.quick else 10_000)
    qn = 500 if args.quick else 5_000
    rounds = 1 if args.quick else 3
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH: install Redis to run this benchmark")
    versions = {"redis-server": tool_version("redis-server"), "jexkv": jexkv.__version__}
    for module in ("redis", "hiredis", "arq", "saq", "taskiq", "taskiq_redis", "bullmq"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            pass
    print(f"aio benchmark: KV n={n:,}, queues n={qn:,}, best of {rounds}", flush=True)
    with tempfile.TemporaryDirectory(prefix="jexkv-bench-aio-") as directory:
        with RedisServer(directory) as server:
            url = server.url(db=0)
            kv, kv_skipped = kv_rounds(url, n, rounds)
            rates = redis_benchmark(server.port, n * 10, BENCH_PIPELINE)
            bench = (rates["SET"], rates["GET"])
            queues, q_skipped, latency, ceiling = queue_rounds(url, qn, max(1, rounds - 1))
    body = report(n, qn, rounds, kv, kv_skipped, bench, queues, q_skipped, latency, ceiling,
                  versions, _report.command_line("aio.py"))  # fmt: skip
    _report.publish("aio", body, args)


if __name__ == "__main__":
    main()
