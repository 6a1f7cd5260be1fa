"""What every part of the queue benchmark shares: its settings, the Redis server's port and the
db each measure uses on it, the URL of a fresh jexkv store, and the worker processes (queue.py run
again with a hidden flag).

Like queue.py, every _queue_*.py module that imports jexkv imports ``_report`` first, which
keeps benchmarks/ (and queue.py) behind the stdlib ``queue`` module on sys.path.
"""

import os
import subprocess
import sys

import _report
from _redis import HOST

import jexkv.resp

WORKERS = 4
QUEUE = "bench"
TASK = "noop"
DRAIN_TIMEOUT_S = 120

REDIS = {"port": None}  # the port of the redis-server main() starts, when there is one
# One db each on that server, emptied before every use.
DB_JEXKV, DB_HUEY, DB_RQ, DB_BULLMQ, DB_MANY, DB_LATENCY = range(6)

# The worker processes run the entry point again, with --worker or --rq-worker.
QUEUE_SCRIPT = os.path.join(_report.BENCH_DIR, "queue.py")


def sqlite_url(directory, name="queue.db"):
    return "sqlite:///" + os.path.join(directory, name)


def redis_url(db):
    return f"redis://{HOST}:{REDIS['port']}/{db}"


def flushdb(db):
    """Empty one db of the benchmark's redis-server (FLUSHDB), with jexkv's own client."""
    client = jexkv.resp.Redis(HOST, REDIS["port"], db=db)
    try:
        client.execute_command("FLUSHDB")
    finally:
        client.close()


def backend_url(backend, directory, db):
    """The URL of a fresh jexkv store: memory://, a new SQLite file, or an emptied Redis db."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return sqlite_url(directory)
    flushdb(db)
    return redis_url(db)


def backends():
    """The jexkv backends the jexkv-alone measures run on: redis only with a server."""
    return ["memory", "sqlite", *(["redis"] if REDIS["port"] is not None else [])]


def start_child(flag, value, stderr=None):
    """``python benchmarks/queue.py FLAG VALUE`` from the repository root, with pipes to its
    stdin and stdout (text)."""
    return subprocess.Popen(
        [sys.executable, QUEUE_SCRIPT, flag, value],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=_report.REPO_ROOT,
    )


def stop_child(child):
    """Close a worker process's stdin (its cue to finish) and wait for it; kill it after 30 s."""
    if child.stdin and not child.stdin.closed:
        child.stdin.close()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
