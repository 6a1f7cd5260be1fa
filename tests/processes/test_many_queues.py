"""Many idle queues in one process (README, "Many queues"): one watcher per store, not a
poll and a connection per queue, and every queue still wakes when work comes.

Idle workers used to look for work themselves: on SQLite every idle thread read
``PRAGMA data_version`` every 20 ms over a connection of its own, on Redis every queue held
a blocking connection, and every idle thread looked at its queue once a second. Here the
engine's own look (its safety net) is pushed far out, so a job is only run this fast when
the store's watcher wakes its queue.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import pytest

import jexkv
from jexkv import engine
from jexkv.redis.markers import DEDICATED
from jexkv.resp.protocol import as_text
from jexkv.sqlite.pool import READERS
from tests.helpers import python_env
from tests.processes.conftest import Backend

QUEUES = 300
DEADLINE = 20.0  # seconds for a job to start: far below the engine's safety net here


@pytest.fixture(autouse=True)
def no_safety_net(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "IDLE_WAIT_S", 3600.0)


def _enqueue_elsewhere(url: str, queue: str, payload: str) -> None:
    code = (
        "import jexkv, sys\n"
        "with jexkv.open_queue(sys.argv[1]) as q: q.enqueue(sys.argv[2], 'job', sys.argv[3])"
    )
    subprocess.run(
        [sys.executable, "-c", code, url, queue, payload],
        check=True,
        env=python_env(),
        timeout=60,
    )


def _sqlite_connections(path: str) -> int:
    """The file descriptors of this process open on the database file itself."""
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                fds += 1
        except OSError:
            pass
    return fds


def _redis_clients(url: str) -> int:
    """How many clients the server has, this probe's own left out."""
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        info = as_text(client.execute_command("INFO", "clients"))
    return int(info.split("connected_clients:")[1].split()[0]) - 1


def test_many_idle_queues_hold_few_connections_and_each_wakes(backend: Backend) -> None:
    url = backend.url("many")
    started: dict[str, threading.Event] = {f"q{i}": threading.Event() for i in range(QUEUES)}
    clients_before = _redis_clients(url) if backend.name == "redis" else 0
    with jexkv.open_queue(url) as queue:
        for name, event in started.items():
            queue.register_worker(name, lambda job, event=event: event.set())
        time.sleep(1.0)  # every worker has looked once and waits
        if backend.name == "sqlite":
            held = _sqlite_connections(queue._backend._db.path)  # type: ignore[attr-defined]
            assert held <= READERS + 2, f"{held} connections for {QUEUES} idle queues"
        else:
            held = _redis_clients(url) - clients_before
            # The watchers' own, plus the pool's: at most max_connections (50), opened when
            # 300 threads made their first calls at once.
            assert held <= DEDICATED + 1 + 50, f"{held} connections for {QUEUES} idle queues"
        for name in random.sample(sorted(started), 3):
            began = time.monotonic()
            _enqueue_elsewhere(url, name, "from another process")
            assert started[name].wait(DEADLINE), f"{name} was not woken"
            assert time.monotonic() - began < DEADLINE
        name = random.choice(sorted(started))
        started[name].clear()
        queue.enqueue(name, "job", "from this process")
        assert started[name].wait(DEADLINE), f"{name} was not woken by a local enqueue"


def test_idle_sqlite_queues_neither_poll_nor_write_the_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    with jexkv.open_queue(url, lease_ms=200) as queue:
        for i in range(QUEUES):
            queue.register_worker(f"q{i}", lambda job: None)
        time.sleep(1.0)
        statements: list[str] = []
        db = queue._backend._db  # type: ignore[attr-defined]
        db.trace(statements.append)
        with jexkv.open_kv(url) as kv:  # another connection's commits, read by the watcher
            before = kv._db.read("PRAGMA data_version")[0][0]  # type: ignore[attr-defined]
            time.sleep(1.0)  # five lease intervals: stalled checks, lease renewals
            after = kv._db.read("PRAGMA data_version")[0][0]  # type: ignore[attr-defined]
        db.trace(None)
    # The stalled check reads before it writes: idle queues commit nothing. Each queue's
    # check is one read per lease interval; nothing else runs while the workers are idle.
    assert before == after, "idle queues committed to the file"
    assert len(statements) <= 6 * QUEUES, f"{len(statements)} statements in 1 s of idleness"
    assert not any("data_version" in s for s in statements)
