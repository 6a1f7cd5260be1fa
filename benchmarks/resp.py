"""RESP client benchmark: jexkv's Redis client side by side with redis-py and redis-benchmark.

    python benchmarks/resp.py              # full run, rewrites the resp section of BENCHMARKS.md
    python benchmarks/resp.py --no-write   # print only
    python benchmarks/resp.py --quick      # smoke run (small n, never writes)

The script starts its own ``redis-server`` (no persistence, a temporary folder, a free port on
127.0.0.1, never 6379) and stops it at the end. Every Python client uses one connection and small
values (3 bytes, as redis-benchmark's default): N ``SET`` then N ``GET`` one command at a time
(each a full round trip), then 5N ``SET`` and 5N ``GET`` in pipelines of 100 (no MULTI/EXEC).
Best of a few rounds, interleaved across contenders so a slow moment of the machine hits them all.
Each client is called the way its users call it: redis-py through ``set``/``get`` and
``pipeline(transaction=False)`` with the default connection pool, jexkv through
``execute_command`` and ``pipeline()``; methods are looked up once.

redis-py runs twice: with its pure-Python parser (forced, RESP2) and with hiredis (when
importable). ``redis-benchmark -c 1`` (one connection, one command at a time) and
``redis-benchmark -c 1 -P 16`` are the C limits, parsed from their ``--csv`` output. A peer that is
not installed is skipped with a note.
"""

import csv
import gc
import io
import shutil
import subprocess
import tempfile
import time

import _report  # found in benchmarks/; puts the repo root first on sys.path
from _redis import HOST, RedisServer

import jexkv

VALUE = "xxx"  # 3 bytes, redis-benchmark's default -d
PIPELINE = 100
PIPE_FACTOR = 5  # pipelined phases run PIPE_FACTOR * n commands
BENCH_PIPELINE = 16  # redis-benchmark -P
BENCH_FACTOR = 10  # redis-benchmark -P runs BENCH_FACTOR * n requests per test
PHASES = ("set_one", "get_one", "set_pipe", "get_pipe")


def tool_version(command):
    try:
        out = subprocess.run(
            [command, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    version = next((w[2:] for w in words if w.startswith("v=")), None)
    return version or (words[-1] if words else None)


# Python contenders. Each one is a class: __init__(port) opens one connection, the four timed
# loops take the keys (and the value), the readers return what they read last so that the run is
# checked, close() releases the client.


class Jexkv:
    name = "jexkv"
    tag = "jexkv"

    def __init__(self, port):
        from jexkv.resp.client import Redis

        self.client = Redis.from_url(f"redis://{HOST}:{port}/0")

    def set_one(self, keys, value):
        execute = self.client.execute_command
        for key in keys:
            execute("SET", key, value)

    def get_one(self, keys):
        execute = self.client.execute_command
        reply = None
        for key in keys:
            reply = execute("GET", key)
        return reply

    def set_pipe(self, keys, value):
        pipeline = self.client.pipeline
        for i in range(0, len(keys), PIPELINE):
            pipe = pipeline()
            queue = pipe.execute_command
            for key in keys[i : i + PIPELINE]:
                queue("SET", key, value)
            pipe.execute()

    def get_pipe(self, keys):
        pipeline = self.client.pipeline
        replies = None
        for i in range(0, len(keys), PIPELINE):
            pipe = pipeline()
            queue = pipe.execute_command
            for key in keys[i : i + PIPELINE]:
                queue("GET", key)
            replies = pipe.execute()
        return replies[-1]

    def close(self):
        self.client.close()


class RedisPy:
    """redis-py forced onto its pure-Python RESP2 parser (hiredis would be picked otherwise)."""

    name = "redis-py (pure-Python parser)"
    tag = "redispy"
    requires = "redis"

    def __init__(self, port):
        import redis

        pool = redis.ConnectionPool(
            host=HOST, port=port, protocol=2, parser_class=self.parser_class()
        )
        self.client = redis.Redis(connection_pool=pool)
        connection = pool.get_connection()  # check the parser actually used
        parser = type(connection._parser).__name__
        pool.release(connection)
        if parser != self.parser_class().__name__:
            raise RuntimeError(f"{self.name}: redis-py uses {parser}")

    @staticmethod
    def parser_class():
        from redis.connection import _RESP2Parser

        return _RESP2Parser

    def set_one(self, keys, value):
        set_ = self.client.set
        for key in keys:
            set_(key, value)

    def get_one(self, keys):
        get = self.client.get
        reply = None
        for key in keys:
            reply = get(key)
        return reply

    def set_pipe(self, keys, value):
        pipeline = self.client.pipeline
        for i in range(0, len(keys), PIPELINE):
            pipe = pipeline(transaction=False)
            set_ = pipe.set
            for key in keys[i : i + PIPELINE]:
                set_(key, value)
            pipe.execute()

    def get_pipe(self, keys):
        pipeline = self.client.pipeline
        replies = None
        for i in range(0, len(keys), PIPELINE):
            pipe = pipeline(transaction=False)
            get = pipe.get
            for key in keys[i : i + PIPELINE]:
                get(key)
            replies = pipe.execute()
        return replies[-1]

    def close(self):
        self.client.close()
        self.client.connection_pool.disconnect()


class RedisPyHiredis(RedisPy):
    name = "redis-py + hiredis"
    tag = "hiredis"
    requires = "hiredis"

    @staticmethod
    def parser_class():
        from redis.connection import _HiredisParser

        return _HiredisParser


CONTENDERS = [Jexkv, RedisPy, RedisPyHiredis]


def missing_peer(contender):
    """Why a contender cannot run here, or None."""
    if contender is Jexkv:
        try:
            import jexkv.resp.client  # noqa: F401
        except ImportError as e:
            return f"jexkv.resp.client is not importable ({e})"
        return None
    for module in ("redis", getattr(contender, "requires", "redis")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install {module})"
    return None


def timed(fn, *args):
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def run_contender(contender, port, n):
    """Seconds for each phase of one round of one contender, checked."""
    keys = [f"{contender.tag}:{i}" for i in range(n)]
    pipe_keys = [f"{contender.tag}:p{i}" for i in range(n * PIPE_FACTOR)]
    expected = VALUE.encode()
    client = contender(port)
    try:
        seconds = {}
        seconds["set_one"], _ = timed(client.set_one, keys, VALUE)
        seconds["get_one"], last_one = timed(client.get_one, keys)
        seconds["set_pipe"], _ = timed(client.set_pipe, pipe_keys, VALUE)
        seconds["get_pipe"], last_pipe = timed(client.get_pipe, pipe_keys)
    finally:
        client.close()
    if last_one != expected or last_pipe != expected:  # a client that lost its values looks fast
        raise RuntimeError(f"{contender.name}: read {last_one!r} / {last_pipe!r}, not {expected!r}")
    return seconds


# redis-benchmark.


def redis_benchmark(port, n, pipeline):
    """{"SET": ops/s, "GET": ops/s} from ``redis-benchmark --csv``."""
    command = ["redis-benchmark", "-h", HOST, "-p", str(port), "-c", "1", "-n", str(n)]
    if pipeline > 1:
        command += ["-P", str(pipeline)]
    command += ["-t", "set,get", "--csv"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    rates = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 2 and row[0].upper() in ("SET", "GET"):  # skips the "test","rps" header
            rates[row[0].upper()] = float(row[1])
    if set(rates) != {"SET", "GET"}:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return rates


BENCH_ONE = "redis-benchmark -c 1 (C, the limit)"
BENCH_PIPE = f"redis-benchmark -c 1 -P {BENCH_PIPELINE} (C, the limit)"


def run_all(port, n, rounds):
    """({name: {phase: ops/s}}, {name: note}) for everything that ran / was skipped."""
    runnable, skipped = _report.split_runnable(CONTENDERS, missing_peer)
    have_bench = shutil.which("redis-benchmark") is not None
    if not have_bench:
        for name in (BENCH_ONE, BENCH_PIPE):
            skipped[name] = "redis-benchmark is not on PATH"
    counts = {"set_one": n, "get_one": n, "set_pipe": n * PIPE_FACTOR, "get_pipe": n * PIPE_FACTOR}
    best = {}
    for round_no in range(rounds):
        for contender in runnable:
            seconds = run_contender(contender, port, n)
            rates = best.setdefault(contender.name, {})
            for phase, s in seconds.items():
                rates[phase] = max(rates.get(phase, 0.0), counts[phase] / s)
        if have_bench:
            for name, requests, pipeline, (set_phase, get_phase) in (
                (BENCH_ONE, n, 1, ("set_one", "get_one")),
                (BENCH_PIPE, n * BENCH_FACTOR, BENCH_PIPELINE, ("set_pipe", "get_pipe")),
            ):
                measured = redis_benchmark(port, requests, pipeline)
                rates = best.setdefault(name, {})
                for phase, command in ((set_phase, "SET"), (get_phase, "GET")):
                    rates[phase] = max(rates.get(phase, 0.0), measured[command])
        print(f"  round {round_no + 1}/{rounds} done", flush=True)
    return best, skipped


# The report.


def ratio(results, a, b, phase):
    if phase in results.get(a, {}) and phase in results.get(b, {}):
        return results[a][phase] / results[b][phase]
    return None


def report(n, rounds, results, skipped, versions, command):
    names = [c.name for c in CONTENDERS] + [BENCH_ONE, BENCH_PIPE]
    rows = []
    for name in names:
        if name in skipped:
            rows.append([name, *["skipped"] * len(PHASES)])
        else:
            rates = results.get(name, {})
            rows.append([name, *(f"{rates[p]:,.0f}" if p in rates else "-" for p in PHASES)])
    headers = [
        "contender",
        "SET/s one at a time",
        "GET/s one at a time",
        f"SET/s pipelined ({PIPELINE})",
        f"GET/s pipelined ({PIPELINE})",
    ]
    table = _report.markdown_table(headers, rows)

    me, pure, hi = Jexkv.name, RedisPy.name, RedisPyHiredis.name
    checks = [
        ("SET one at a time, jexkv / redis-py (pure)", pure, "set_one", 2),
        ("GET one at a time, jexkv / redis-py (pure)", pure, "get_one", 2),
        ("SET one at a time, jexkv / redis-benchmark -c 1", BENCH_ONE, "set_one", 0.8),
        ("GET one at a time, jexkv / redis-benchmark -c 1", BENCH_ONE, "get_one", 0.8),
        (f"SET pipelined ({PIPELINE}), jexkv / redis-py (pure)", pure, "set_pipe", 1.5),
        (f"GET pipelined ({PIPELINE}), jexkv / redis-py (pure)", pure, "get_pipe", 1.5),
    ]
    ratios = []
    for label, other, phase, target in checks:
        why = "; ".join(skipped[x] for x in (me, other) if x in skipped)
        ratios.append(
            _report.ratio_line(label, ratio(results, me, other, phase), target, missing=why)
        )
    against_hiredis = [
        f"{label} {value:.2f}x"
        for label, value in (
            (
                phase.replace("_one", " one at a time").replace("_pipe", " pipelined"),
                ratio(results, me, hi, phase),
            )
            for phase in PHASES
        )
        if value is not None
    ]
    if against_hiredis:
        ratios.append(
            "- jexkv / redis-py + hiredis (no target, for reference): " + ", ".join(against_hiredis)
        )

    notes = [f"- {name}: skipped, {note}" for name, note in skipped.items()]
    version_line = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    lines = [
        "## RESP client (Redis)",
        "",
        *_report.machine_lines(command),
        f"- Versions: {version_line}",
        "",
        (
            f"One connection to a local `redis-server` (127.0.0.1, no persistence), 3-byte values:"
            f" {n:,} `SET` then {n:,} `GET` one command at a time (a round trip each), then"
            f" {n * PIPE_FACTOR:,} `SET` and {n * PIPE_FACTOR:,} `GET` in pipelines of {PIPELINE}"
            f" (no MULTI/EXEC). Best of {rounds} round{'s' * (rounds > 1)}, interleaved."
            " redis-py runs with its pure-Python RESP2 parser forced and with hiredis;"
            " `redis-benchmark -c 1` (one"
            f" command at a time, {n:,} requests) and `-c 1 -P {BENCH_PIPELINE}` (pipelines of"
            f" {BENCH_PIPELINE}, {n * BENCH_FACTOR:,} requests) are the C limits, from their"
            " `--csv` output."
        ),
        "",
        table,
        "",
        *notes,
        *([""] if notes else []),
        "Ratios against targets:",
        "",
        *ratios,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = _report.arguments(__doc__.splitlines()[0], "commands per one-at-a-time phase")
    args = parser.parse_args(argv)
    n = args.n or (1_000 if args.quick else 20_000)
    rounds = 1 if args.quick else 3
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH: install Redis to run this benchmark")

    versions = {"redis-server": tool_version("redis-server"), "jexkv": jexkv.__version__}
    for module in ("redis", "hiredis"):
        try:
            versions[module if module != "redis" else "redis-py"] = __import__(module).__version__
        except (ImportError, AttributeError):
            pass

    print(f"resp benchmark: n={n:,}, pipelines of {PIPELINE}, best of {rounds}", flush=True)
    with tempfile.TemporaryDirectory(prefix="jexkv-bench-redis-") as directory:
        with RedisServer(directory) as server:
            print(f"  redis-server on port {server.port}", flush=True)
            results, skipped = run_all(server.port, n, rounds)
    body = report(n, rounds, results, skipped, versions, _report.command_line("resp.py"))
    _report.publish("resp", body, args)


if __name__ == "__main__":
    main()
