"""jexkv.aio never blocks the event loop (README, "asyncio"): while a Redis server is frozen
(SIGSTOP) or another process holds a SQLite file's write lock, a ticker task on the same loop
keeps ticking (no gap over 100 ms), and the calls that wait end as the sync API's would:
a bounded BackendTimeout on the frozen server, success once the lock is given back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

import jexkv
import jexkv.aio
from tests.helpers import python_env

MAX_GAP_S = 0.1  # what the issue allows a tick to be late by
TICK_S = 0.005


class Ticker:
    """A task that wakes every TICK_S and keeps the longest gap between two wake-ups."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self.worst = max(self.worst, now - last - TICK_S)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def frozen_later(own_redis_server):
    """``freeze()``: SIGSTOP this test's own redis-server (SIGCONT at teardown)."""
    pid = own_redis_server.process.pid
    yield lambda: os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGCONT)


def test_a_frozen_redis_server_never_blocks_the_loop(own_redis_server, frozen_later):
    url = own_redis_server.url() + "?connect_timeout_ms=500&socket_timeout_ms=1000"

    async def main() -> tuple[Ticker, list[object], float]:
        kv = jexkv.aio.open_kv(url)
        q = jexkv.aio.open_queue(url)
        await kv.set("k", 1)
        await q.enqueue("emails", "warm")  # the connections are open before the freeze
        ran = asyncio.Event()

        async def handle(job):
            ran.set()

        q.register_worker("emails", handle, concurrency=5)
        await asyncio.wait_for(ran.wait(), 10)
        frozen_later()
        with Ticker() as ticker:
            began = time.monotonic()
            outcomes = await asyncio.gather(
                kv.get("k"),
                kv.set("other", 2),
                q.enqueue("emails", "frozen"),
                q.counts("emails"),
                return_exceptions=True,
            )
            took = time.monotonic() - began
            await asyncio.sleep(0.3)  # the idle workers wait on a frozen server too
        await kv.aclose()
        await q.aclose(timeout_ms=500)
        return ticker, outcomes, took

    ticker, outcomes, took = asyncio.run(main())
    assert all(isinstance(o, jexkv.BackendTimeout) for o in outcomes), outcomes
    assert took < 10, f"the calls took {took:.1f} s (bound: 1.5 s each, at once)"
    assert ticker.ticks > 100, ticker.ticks
    assert ticker.worst < MAX_GAP_S, f"the loop stalled for {ticker.worst * 1000:.0f} ms"


LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def test_a_sqlite_file_locked_by_another_process_never_blocks_the_loop(tmp_path):
    path = tmp_path / "app.db"
    url = f"sqlite:///{path}"
    with jexkv.open_kv(url), jexkv.open_queue(url):
        pass  # the file and its tables exist before the other process locks it
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), "1.5"],
        stdout=subprocess.PIPE,
        env=python_env(),
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"

        async def main() -> tuple[Ticker, list[object], float]:
            kv = jexkv.aio.open_kv(url)
            q = jexkv.aio.open_queue(url, keep_completed=10)
            done = asyncio.Event()

            async def handle(job):
                done.set()
                return "ran"

            with Ticker() as ticker:
                began = time.monotonic()
                q.register_worker("emails", handle, concurrency=5)
                outcomes = await asyncio.gather(
                    kv.set("k", 1),  # opens the file too: in a thread
                    q.enqueue("emails", "while-locked"),
                    kv.incr("n"),
                    return_exceptions=True,
                )
                await asyncio.wait_for(done.wait(), 15)
                took = time.monotonic() - began
            outcomes.append(await kv.get("k"))
            await kv.aclose()
            await q.aclose()
            return ticker, outcomes, took

        ticker, outcomes, took = asyncio.run(main())
    finally:
        locker.kill()
        locker.wait()
    assert outcomes[0] is True and outcomes[2] == 1 and outcomes[3] == 1, outcomes
    assert isinstance(outcomes[1], jexkv.Job), outcomes
    assert took >= 1.0, f"done after {took:.2f} s: was the file locked at all?"
    assert ticker.ticks > 100, ticker.ticks
    assert ticker.worst < MAX_GAP_S, f"the loop stalled for {ticker.worst * 1000:.0f} ms"
