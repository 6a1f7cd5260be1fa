"""``jexkv worker`` with asyncio (README, "asyncio"): an ``async def`` setup function is
awaited and gets a jexkv.aio queue; ``async def`` handlers, from either kind of setup, run
as coroutines on one event loop, ``--concurrency`` at once; the first signal stops
gracefully (running jobs finish and are recorded), as with plain handlers."""

from __future__ import annotations

import pathlib
import re
import signal
import time

import jexkv
from tests.cli.test_cli import (
    DEADLINE,
    Worker,
    _err,
    _module,
    _signal_exit_code,
    _state_counts,
    _wait_ready,
    ok_json,
)
from tests.helpers import wait_for

ASYNC_SETUP = """
    import asyncio
    import pathlib

    HERE = pathlib.Path(__file__).resolve().parent
    running = 0
    most = 0


    async def setup(queue):
        await queue.enqueue("mail", "hello-from-setup", {"sleep": 0})  # a jexkv.aio queue

        async def handle(job):
            global running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(job.payload["sleep"])
            running -= 1
            (HERE / "most").write_text(str(most))
            return {"slept": job.payload["sleep"], "most": most}

        queue.register_worker("mail", handle)
"""

SYNC_SETUP_ASYNC_HANDLER = """
    import asyncio


    def setup(queue):
        async def handle(job):
            await asyncio.sleep(job.payload["sleep"])
            return "awaited"

        queue.register_worker("mail", handle)
"""


def _run_twenty(tmp_path: pathlib.Path, worker: Worker, module: str, url: tuple[str, ...]) -> None:
    """Start the worker (--concurrency 10), run 20 jobs of 0.4 s, stop it with SIGTERM
    while a 1.5 s job runs: every job completes, the last one too."""
    proc = worker(*url, "worker", module, "--concurrency", "10")
    _wait_ready(tmp_path, proc)
    with jexkv.open_queue(f"sqlite:///{tmp_path / 'w.db'}") as q:  # all at once
        q.enqueue_many("mail", [{"name": "nap", "payload": {"sleep": 0.4}}] * 20)

    def completed() -> int:
        return _state_counts(tmp_path, url, "mail")["completed"]

    assert wait_for(lambda: completed() >= 20, timeout=DEADLINE), _err(tmp_path)
    last = ok_json(tmp_path, *url, "queue", "enqueue", "mail", "long", '{"sleep": 1.5}')
    started = f"job {last['id']} (long) on mail started"
    assert wait_for(lambda: started in _err(tmp_path), timeout=DEADLINE), _err(tmp_path)
    t0 = time.monotonic()
    code = _signal_exit_code(tmp_path, proc, signal.SIGTERM, "SIGTERM")
    err = _err(tmp_path)
    assert code == 0, f"worker exited {code}: {err}"
    assert time.monotonic() - t0 < 15
    assert "Traceback" not in err, err
    assert re.search(rf"job {re.escape(last['id'])} \(long\) on mail done in", err), err
    counts = _state_counts(tmp_path, url, "mail")
    assert counts["completed"] == completed() and counts["active"] == counts["waiting"] == 0
    assert "stopping" in err and "stopped" in err, err


def test_an_async_setup_runs_async_handlers_on_one_loop(
    tmp_path: pathlib.Path, worker: Worker
) -> None:
    _module(tmp_path, "app", ASYNC_SETUP)
    url = ("--url", "sqlite:///w.db?keep_completed=100")
    _run_twenty(tmp_path, worker, "app:setup", url)
    assert _state_counts(tmp_path, url, "mail")["completed"] == 22  # with the setup's job
    assert int((tmp_path / "most").read_text()) == 10  # --concurrency coroutines at once


def test_a_plain_setup_may_register_async_handlers(tmp_path: pathlib.Path, worker: Worker) -> None:
    _module(tmp_path, "app", SYNC_SETUP_ASYNC_HANDLER)
    url = ("--url", "sqlite:///w.db?keep_completed=100")
    _run_twenty(tmp_path, worker, "app:setup", url)
    done = ok_json(tmp_path, *url, "queue", "jobs", "mail", "--state", "completed")
    assert {job["result"] for job in done} == {"awaited"}  # awaited, not a coroutine
