"""Large values: the peak memory of storing and reading one big non-ASCII string, per adapter.

    python benchmarks/large_values.py             # a 50 MB value (as UTF-8)
    python benchmarks/large_values.py --mb 10     # another size

Each case runs in a fresh process: it builds the value, then measures one ``set`` + ``get``
(KV) or one ``enqueue`` + ``get_job`` (queue), and prints the peak of Python's allocations
above the value itself (tracemalloc) and the growth of the process's peak RSS (which also
counts SQLite's own buffers), both as MB and as multiples of the value's UTF-8 size.
Nothing is written to BENCHMARKS.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc

import _report  # puts the repo root first on sys.path
from _redis import RedisServer

import jexkv

CASES = ("memory kv", "sqlite kv", "redis kv", "memory queue", "sqlite queue", "redis queue")
MB = 1_000_000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000  # KiB on Linux


def _url(case: str, folder: str, port: int) -> str:
    backend = case.split()[0]
    if backend == "memory":
        return f"memory://large-{case.split()[1]}"
    if backend == "sqlite":
        return f"sqlite:///{folder}/{case.split()[1]}.db"
    return f"redis://127.0.0.1:{port}/0"


def run_case(case: str, mb: int, folder: str, port: int) -> dict:
    """One measurement, in this process (the child's side)."""
    url = _url(case, folder, port)
    value = "ü€😀a" * (mb * MB // 10)  # 2 + 3 + 4 + 1 bytes of UTF-8 per 4 characters
    utf8 = len(value.encode("utf-8"))
    in_memory = sys.getsizeof(value)  # 4 bytes a character: the value holds emoji
    opened = jexkv.open_kv(url) if case.endswith("kv") else jexkv.open_queue(url)
    rss0 = _rss_mb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    if case.endswith("kv"):
        opened.set("big", value)
        ok = opened.get("big") == value
    else:
        job = opened.enqueue("big", "task", value)
        ok = opened.get_job("big", job.id).payload == value
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss = _rss_mb() - rss0
    opened.close()
    return {
        "case": case,
        "utf8_mb": utf8 / MB,
        "str_mb": in_memory / MB,
        "peak_mb": peak / MB,
        "rss_mb": rss,
        "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="the value's size in MB of UTF-8")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # the child's side
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.mb, args.folder, args.port)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder, RedisServer(folder) as server:
        for case in CASES:
            command = [sys.executable, __file__, "--case", case, "--mb", str(args.mb)]
            command += ["--folder", folder, "--port", str(server.port)]
            env = {**os.environ, "PYTHONPATH": _report.REPO_ROOT}
            out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{case}: done", file=sys.stderr, flush=True)
    size, held = rows[0]["utf8_mb"], rows[0]["str_mb"]
    print(
        f"\nOne value of {size:.0f} MB of UTF-8 (non-ASCII; {held:.0f} MB as a Python str), "
        "set + get; each peak as a multiple of the UTF-8 size / of the str:\n"
    )
    print("| adapter | Python peak above the value | RSS growth | read back |")
    print("| ------- | --------------------------: | ---------: | --------- |")
    for row in rows:
        peak, rss = row["peak_mb"], row["rss_mb"]
        print(
            f"| {row['case']} | {peak:,.0f} MB ({peak / size:.1f}x / {peak / held:.1f}x) "
            f"| {rss:,.0f} MB ({rss / size:.1f}x / {rss / held:.1f}x) "
            f"| {'yes' if row['ok'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
