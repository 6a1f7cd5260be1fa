"""TimedThreads: plain handlers run with a bound on each attempt (``timeout_ms``).

Rules:
* A thread cannot be stopped. A call with a bound runs in a thread of the queue's own pool
  of ``2 × concurrency`` threads while its slot waits up to the bound; past it, the attempt
  fails with JobTimeout (its lease given up by the failure, so it is retried or dead like
  any failure), the call is left to finish in its thread, and its late result is discarded
  and logged.
* So ``concurrency`` slots keep running new jobs while up to ``concurrency`` timed-out
  calls still run. Past that, a slot waits for one of them to end before it starts the
  next job (its bound starts when it starts), and says so in the log once.
* Calls without a bound run in the slot's own thread, as before: no cost when unused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable

from jexkv.engine import Raised, run_handler, timed_out
from jexkv.jobs import Job

__all__ = ["TimedThreads"]

log = logging.getLogger("jexkv")


class TimedThreads:
    """The bounded calls of one queue's ``concurrency`` slots."""

    def __init__(self, queue: str, concurrency: int) -> None:
        self.queue = queue
        self._pool = concurrent.futures.ThreadPoolExecutor(
            2 * concurrency, thread_name_prefix=f"jexkv-timed-{queue}"
        )
        self._free = threading.BoundedSemaphore(2 * concurrency)
        self._warned = False

    def _take(self) -> None:
        if not self._free.acquire(blocking=False):
            if not self._warned:
                self._warned = True
                log.warning(
                    "queue %r: every thread is held by a job that ran past its timeout; new "
                    "jobs wait for one of them to end",
                    self.queue,
                )
            self._free.acquire()

    def _submit(self, handler: Callable[[Job], Any], job: Job) -> concurrent.futures.Future[Any]:
        future = self._pool.submit(run_handler, handler, job)
        future.add_done_callback(lambda _: self._free.release())
        return future

    def _late(self, job: Job, started: float, future: concurrent.futures.Future[Any]) -> None:
        outcome = future.result()
        how = "failed" if type(outcome) is Raised else "finished"
        log.warning(
            "job %s (%s) on queue %r %s %.0f ms after it started, past its timeout: "
            "its outcome is discarded (the attempt failed with JobTimeout)",
            job.id, job.name, self.queue, how, (time.monotonic() - started) * 1000,
        )  # fmt: skip

    def call(self, handler: Callable[[Job], Any], job: Job, timeout_s: float) -> Any:
        """The handler's outcome (a value, or Raised), or Raised(JobTimeout) past the bound."""
        self._take()
        started = time.monotonic()
        future = self._submit(handler, job)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.add_done_callback(lambda f: self._late(job, started, f))
            return Raised(timed_out(job, timeout_s))

    async def acall(self, handler: Callable[[Job], Any], job: Job, timeout_s: float | None) -> Any:
        """The same from a task: the slot awaits, the loop goes on."""
        loop = asyncio.get_running_loop()
        if not self._free.acquire(blocking=False):
            await loop.run_in_executor(None, self._take)
        started = time.monotonic()
        future = self._submit(handler, job)
        waiting = asyncio.wrap_future(future)
        done, _ = await asyncio.wait({waiting}, timeout=timeout_s)
        if done:
            return waiting.result()
        future.add_done_callback(lambda f: self._late(job, started, f))
        return Raised(timed_out(job, timeout_s or 0.0))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)
