"""The Node side of the queue benchmark: runs benchmarks/node/bench.js against the BullMQ and
ioredis that tests/interop/node/package-lock.json pins, installed once into a cache folder by
tests/interop/npm_cache.py (the interop tests' installer: one pin, one install), with
``NODE_PATH`` pointing at it.

Only the stdlib is imported at the top (queue.py imports this before ``_report`` fixes sys.path).
"""

import json
import os
import subprocess

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "bench.js")
RUN_TIMEOUT_S = 300


def _npm_cache():
    # Imported when used: the repo root is on sys.path only once _report has run.
    from tests.interop import npm_cache

    return npm_cache


class NodeUnavailable(Exception):
    """Node, npm or the install is missing; the message says why, for the skip note."""


def node_modules():
    """The node_modules folder of the pinned BullMQ (npm ci on first use, shared with the
    interop tests); raises NodeUnavailable when node or npm is missing or the install fails."""
    cache = _npm_cache()
    try:
        return str(cache.node_modules_dir())
    except cache.NodeUnavailable as exc:
        raise NodeUnavailable(str(exc)) from None


def run_bullmq(port, db, n, concurrency, host="127.0.0.1"):
    """bench.js's JSON result: {"n", "enqueue_s", "drain_s", "counts"}."""
    env = {**os.environ, "NODE_PATH": node_modules()}
    command = ["node", SCRIPT, "--host", host, "--port", str(port), "--db", str(db)]
    command += ["--n", str(n), "--concurrency", str(concurrency)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"bench.js exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pinned():
    """{"bullmq": "6.7.0", "ioredis": "5.9.3"}: the versions package-lock.json pins."""
    return _npm_cache().pinned_versions()
