"""Key-value benchmark: jexkv's adapters side by side with the peers, in one process.

    python benchmarks/kv.py              # full run, rewrites the kv section of BENCHMARKS.md
    python benchmarks/kv.py --no-write   # print only
    python benchmarks/kv.py --quick      # smoke run (small n, never writes)

Every contender does the same work: N ``set`` of the same small dicts with a 60 s TTL, then N
``get`` of them, single thread, best of a few rounds with a fresh store per round (rounds are
interleaved across contenders so a slow moment of the machine hits them all). Each peer is
written the way its users would call it, at its best: the lock is taken inline, methods are
looked up once. A peer that is not installed is skipped with a note.

Then the memory of 1,000,000 live keys with a TTL in jexkv's memory adapter against a plain dict
of the same keys and values, both measured with tracemalloc as everything still allocated after
the build (keys, values, containers, bookkeeping).
"""

import contextlib
import gc
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import tracemalloc

import _report  # found in benchmarks/; puts the repo root first on sys.path
from _redis import HOST, RedisServer

import jexkv

TTL_S = 60
TTL_MS = TTL_S * 1000
MEMORY_TTL_MS = 3_600_000


def make_items(n):
    keys = [f"reset:{i}" for i in range(n)]
    values = [{"user": i, "email": f"u{i}@example.com", "scope": "reset"} for i in range(n)]
    return keys, values


# Contenders. Each one is a class: __init__(directory) opens a fresh store (directory is an
# empty temporary folder of its own), sets(keys, values) and gets(keys) are the timed loops,
# get(key) is the untimed check that the values came back, close() releases the store.


class JexkvStore:
    def __init__(self, url):
        self.kv = jexkv.open_kv(url)

    def sets(self, keys, values):
        set_ = self.kv.set
        for key, value in zip(keys, values):
            set_(key, value, ttl_ms=TTL_MS)

    def gets(self, keys):
        get = self.kv.get
        for key in keys:
            get(key)

    def get(self, key):
        return self.kv.get(key)

    def close(self):
        self.kv.close()


class JexkvMemory(JexkvStore):
    name = "jexkv memory://"

    def __init__(self, directory):
        super().__init__("memory://")


class JexkvSQLite(JexkvStore):
    name = "jexkv sqlite (file)"

    def __init__(self, directory):
        super().__init__("sqlite:///" + os.path.join(directory, "kv.db"))


class DictLock:
    """The ceiling: a plain dict behind a lock, no TTL, values stored as-is."""

    name = "dict + Lock (ceiling)"

    def __init__(self, directory):
        self.data, self.lock = {}, threading.Lock()

    def sets(self, keys, values):
        data, lock = self.data, self.lock
        for key, value in zip(keys, values):
            with lock:
                data[key] = value

    def gets(self, keys):
        data, lock = self.data, self.lock
        for key in keys:
            with lock:
                data.get(key)

    def get(self, key):
        return self.data.get(key)

    def close(self):
        self.data.clear()


class CachetoolsTTL:
    """cachetools.TTLCache is not thread-safe: its docs say to guard it with a lock."""

    name = "cachetools TTLCache + Lock"
    requires = "cachetools"

    def __init__(self, directory):
        import cachetools

        self.cache, self.lock = (
            cachetools.TTLCache(maxsize=10**9, ttl=TTL_S),
            threading.Lock(),
        )

    def sets(self, keys, values):
        cache, lock = self.cache, self.lock
        for key, value in zip(keys, values):
            with lock:
                cache[key] = value

    def gets(self, keys):
        cache, lock = self.cache, self.lock
        for key in keys:
            with lock:
                cache.get(key)

    def get(self, key):
        return self.cache.get(key)

    def close(self):
        self.cache.clear()


class Diskcache:
    name = "diskcache Cache"
    requires = "diskcache"

    def __init__(self, directory):
        import diskcache

        self.cache = diskcache.Cache(directory)

    def sets(self, keys, values):
        set_ = self.cache.set
        for key, value in zip(keys, values):
            set_(key, value, expire=TTL_S)

    def gets(self, keys):
        get = self.cache.get
        for key in keys:
            get(key)

    def get(self, key):
        return self.cache.get(key)

    def close(self):
        self.cache.close()


class RawSQLite:
    """The floor for SQLite: what a hand-written sqlite3 cache costs, one statement per call."""

    name = "raw sqlite3 (floor)"
    UPSERT = "INSERT OR REPLACE INTO kv(key, value, expires_at) VALUES (?, ?, ?)"
    SELECT = "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"

    def __init__(self, directory):
        self.db = sqlite3.connect(os.path.join(directory, "kv.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER)"
            " WITHOUT ROWID"
        )

    def sets(self, keys, values):
        execute, dumps, clock, sql = self.db.execute, json.dumps, time.time, self.UPSERT
        for key, value in zip(keys, values):
            execute(sql, (key, dumps(value), int(clock() * 1000) + TTL_MS))

    def gets(self, keys):
        execute, loads, clock, sql = self.db.execute, json.loads, time.time, self.SELECT
        for key in keys:
            row = execute(sql, (key, int(clock() * 1000))).fetchone()
            if row is not None:
                loads(row[0])

    def get(self, key):
        row = self.db.execute(self.SELECT, (key, int(time.time() * 1000))).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self):
        self.db.close()


class RawSQLiteIndexed(RawSQLite):
    """The same, plus the partial index on expires_at that jexkv keeps so that its vacuum
    finds expired rows without a scan: the floor for a store that can reclaim space.
    Shown for reference; the target is measured against the plain floor above."""

    name = "raw sqlite3 + expiry index"

    def __init__(self, directory):
        super().__init__(directory)
        self.db.execute("CREATE INDEX kv_expires_at ON kv(expires_at) WHERE expires_at IS NOT NULL")


REDIS = {"port": None}  # the port of the redis-server main() starts, when there is one


class JexkvRedis(JexkvStore):
    name = "jexkv redis://"
    needs_server = True

    def __init__(self, directory):
        super().__init__(f"redis://{HOST}:{REDIS['port']}/0")
        self.kv.clear()


class RedisPyJSON:
    """redis-py doing the same work: JSON text under the key, SET with PX, GET and decode."""

    name = "redis-py (JSON, SET PX)"
    requires = "redis"
    needs_server = True

    def __init__(self, directory):
        import redis

        self.r = redis.Redis(host=HOST, port=REDIS["port"], db=1)
        self.r.flushdb()

    def sets(self, keys, values):
        set_, dumps = self.r.set, json.dumps
        for key, value in zip(keys, values):
            set_(key, dumps(value), px=TTL_MS)

    def gets(self, keys):
        get, loads = self.r.get, json.loads
        for key in keys:
            raw = get(key)
            if raw is not None:
                loads(raw)

    def get(self, key):
        raw = self.r.get(key)
        return None if raw is None else json.loads(raw)

    def close(self):
        self.r.close()


CONTENDERS = [
    JexkvMemory,
    JexkvSQLite,
    JexkvRedis,
    CachetoolsTTL,
    Diskcache,
    RawSQLite,
    RawSQLiteIndexed,
    RedisPyJSON,
    DictLock,
]


def missing(contender):
    if getattr(contender, "needs_server", False) and REDIS["port"] is None:
        return "redis-server is not on PATH"
    return _report.missing_module(contender)


def timed(fn, *args):
    gc.collect()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run_throughput(n, rounds):
    """{name: (set ops/s, get ops/s)} for the contenders that ran, {name: note} for the others."""
    keys, values = make_items(n)
    checks = sorted({0, n // 2, n - 1})
    runnable, skipped = _report.split_runnable(CONTENDERS, missing)
    best = {c.name: [float("inf"), float("inf")] for c in runnable}
    for round_no in range(rounds):
        for contender in runnable:
            with tempfile.TemporaryDirectory(prefix="jexkv-bench-") as directory:
                store = contender(directory)
                try:
                    set_s = timed(store.sets, keys, values)
                    get_s = timed(store.gets, keys)
                    for i in checks:  # a contender that lost its values would look fast
                        if store.get(keys[i]) != values[i]:
                            raise RuntimeError(f"{contender.name}: wrong value for {keys[i]!r}")
                finally:
                    store.close()
            times = best[contender.name]
            times[0], times[1] = min(times[0], set_s), min(times[1], get_s)
        print(f"  round {round_no + 1}/{rounds} done", flush=True)
    return {name: (n / s, n / g) for name, (s, g) in best.items()}, skipped


def traced_bytes(build):
    """Bytes still allocated (tracemalloc) once build() has returned; build's result is kept."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return size, kept


def run_memory(n):
    """(jexkv memory:// bytes, plain dict bytes) for n live keys with small values."""

    def build_dict():
        return {f"user:{i}": {"n": i} for i in range(n)}

    def build_jexkv():
        kv = jexkv.open_kv("memory://")
        set_ = kv.set
        for i in range(n):
            set_(f"user:{i}", {"n": i}, ttl_ms=MEMORY_TTL_MS)
        return kv

    # Warm up outside tracing: lazily imported modules and first-use caches are not per-key cost.
    warm = jexkv.open_kv("memory://")
    warm.set("warm", {"n": 0}, ttl_ms=MEMORY_TTL_MS)
    warm.close()

    dict_bytes, plain = traced_bytes(build_dict)
    del plain
    jexkv_bytes, kv = traced_bytes(build_jexkv)
    try:
        last = f"user:{n - 1}"
        if kv.get("user:0") != {"n": 0} or kv.get(last) != {"n": n - 1}:
            raise RuntimeError("jexkv memory://: wrong value after the memory build")
    finally:
        kv.close()
    return jexkv_bytes, dict_bytes


def ratio(results, a, b, column):
    if a in results and b in results:
        return results[a][column] / results[b][column]
    return None


def report(n, rounds, results, skipped, memory, mem_n, command):
    SET, GET = 0, 1
    rows = []
    for contender in CONTENDERS:
        name = contender.name
        if name in results:
            set_ops, get_ops = results[name]
            rows.append([name, f"{set_ops:,.0f}", f"{get_ops:,.0f}"])
        else:
            rows.append([name, "skipped", "skipped"])
    table = _report.markdown_table(["contender", "set ops/s", "get ops/s"], rows)

    mem, sql = JexkvMemory.name, JexkvSQLite.name
    cachetools, disk, raw = CachetoolsTTL.name, Diskcache.name, RawSQLite.name
    checks = [
        ("memory set / cachetools set", mem, cachetools, SET, 1.5),
        ("memory get / cachetools get", mem, cachetools, GET, 2),
        ("sqlite set / diskcache set", sql, disk, SET, 2.5),
        ("sqlite set / raw sqlite3 set", sql, raw, SET, 0.85),
        ("sqlite get / diskcache get", sql, disk, GET, 1),
    ]
    ratios = []
    for label, a, b, column, target in checks:
        why = "; ".join(skipped[x] for x in (a, b) if x in skipped)
        value = ratio(results, a, b, column)
        ratios.append(_report.ratio_line(label, value, target, missing=why))

    for column, what in ((SET, "set"), (GET, "get")):
        versus = ratio(results, JexkvRedis.name, RedisPyJSON.name, column)
        if versus is not None:
            ratios.append(
                f"- redis {what} / redis-py {what} (the same JSON values and TTL):"
                f" {versus:.2f}x (no target)"
            )

    indexed = ratio(results, sql, RawSQLiteIndexed.name, SET)
    if indexed is not None:
        ratios.append(
            f"- sqlite set / raw sqlite3 + expiry index set: {indexed:.2f}x"
            " (no target: the cost of jexkv's own code over the same statement and schema)"
        )

    jexkv_bytes, dict_bytes = memory
    ratios.append(
        _report.ratio_line(
            f"memory of {mem_n:,} live keys, jexkv memory:// / plain dict",
            jexkv_bytes / dict_bytes,
            2.5,
            higher_is_better=False,
        )
    )
    notes = [f"- {name}: skipped, {note}" for name, note in skipped.items()]
    mb = 1024 * 1024
    lines = [
        "## Key-value store",
        "",
        *_report.machine_lines(command),
        "",
        (
            f"{n:,} `set` (TTL 60 s) then {n:,} `get` of small dicts"
            ' (`{"user": i, "email": "u{i}@example.com", "scope": "reset"}`),'
            f" single thread, best of {rounds} rounds with a fresh store each."
        ),
        "",
        table,
        "",
        *notes,
        *([""] if notes else []),
        (
            f"Memory of {mem_n:,} live keys with a TTL and values like"
            ' `{"n": i}` (tracemalloc, everything allocated by the build: keys, values,'
            f" containers): jexkv memory:// {jexkv_bytes / mb:,.1f} MiB"
            f" ({jexkv_bytes / mem_n:.0f} B/key), plain dict {dict_bytes / mb:,.1f} MiB"
            f" ({dict_bytes / mem_n:.0f} B/key)."
        ),
        "",
        "Ratios against targets:",
        "",
        *ratios,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "set/get operations per round")
    args = parser.parse_args(argv)
    n = args.n or (2_000 if args.quick else 20_000)
    mem_n = 100_000 if args.quick else 1_000_000
    rounds = 3

    print(f"kv benchmark: {n:,} set + {n:,} get, best of {rounds}", flush=True)
    with contextlib.ExitStack() as stack:
        if shutil.which("redis-server"):
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="jexkv-bench-"))
            REDIS["port"] = stack.enter_context(RedisServer(folder)).port
        results, skipped = run_throughput(n, rounds)
    print(f"memory: {mem_n:,} live keys", flush=True)
    memory = run_memory(mem_n)
    body = report(n, rounds, results, skipped, memory, mem_n, _report.command_line("kv.py"))
    _report.publish("kv", body, args)


if __name__ == "__main__":
    main()
