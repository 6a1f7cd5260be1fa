"""``jexkv worker MODULE:FUNCTION``: run the workers a user's setup function registers.

Rules:
* The process stops gracefully on the first SIGINT or SIGTERM (no new jobs are fetched,
  running jobs finish and are recorded), and at once on the second. Each job's start, end,
  duration and failure is logged on stderr.
* A plain setup function gets a sync TaskQueue; the ``async def`` handlers it registers run
  on the one event loop that TaskQueue owns. An ``async def`` setup function is awaited on
  the process's event loop and gets a jexkv.aio queue (``await queue.enqueue(...)`` in it
  works); every handler it registers runs on that loop (plain ones in threads).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import jexkv
from jexkv.engine import is_async_handler
from jexkv.jobs import Job
from jexkv.queue_args import already_registered, check_worker
from jexkv.urls import parse_url, redact_url

__all__ = ["UserError", "run_worker"]

log = logging.getLogger("jexkv.worker")


class UserError(Exception):
    """A mistake of the command line's user: reported in one line, exit code 2 (cli.py)."""


class _SetupQueue:
    """The TaskQueue handed to the setup function. register_worker applies the command's
    --concurrency as its default and logs every job; workers start only once the setup
    function has returned and "ready" is logged, so no job runs before that line. The
    store is opened on first use, so a target that is no setup function creates nothing.
    ``open`` opens it: jexkv.open_queue, or jexkv.aio.open_queue for an async setup."""

    def __init__(
        self,
        url: str,
        concurrency: int,
        target: str,
        open: Callable[[str], Any],
        processes: bool = False,
    ) -> None:
        self._url = url
        self._open = open
        self._opened: Any = None
        self._concurrency = concurrency
        self._processes = processes  # --processes N: process slots by default
        self._target = target
        self._pending: list[tuple[str, Callable[[Job], Any], int, int | None]] = []

    @property
    def registered(self) -> list[str]:
        return [queue for queue, _, _, _ in self._pending]

    def register_worker(
        self,
        queue: str,
        handler: Callable[[Job], Any],
        *,
        concurrency: int | None = None,
        processes: bool | None = None,
        timeout_ms: int | None = None,
        max_jobs_per_process: int | None = None,
    ) -> None:
        if queue in self.registered:
            raise already_registered(queue)
        slots = concurrency or self._concurrency
        processes = self._processes if processes is None else processes
        name, run, timeout = check_worker(
            queue, handler, slots, processes, timeout_ms, max_jobs_per_process
        )
        self._pending.append((name, _logged(name, run), slots, timeout))

    def start(self) -> None:
        for queue, handler, concurrency, timeout in self._pending:
            self.queue.register_worker(queue, handler, concurrency=concurrency, timeout_ms=timeout)

    def __getattr__(self, name: str) -> Any:
        if name in _JOB_ONLY:  # the setup function treats its argument as a Job
            raise UserError(
                f"{self._target} read .{name} of its argument, as a job handler does: "
                "point `jexkv worker` at a setup function that takes the queue and calls "
                "queue.register_worker(QUEUE, handler)"
            )
        return getattr(self.queue, name)

    @property
    def queue(self) -> Any:
        if self._opened is None:
            self._opened = self._open(self._url)
        return self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()

    async def aclose(self) -> None:
        if self._opened is not None:
            await self._opened.aclose()


# Attributes of a Job that a TaskQueue does not have.
_JOB_ONLY = frozenset(f.name for f in dataclasses.fields(Job)) - set(dir(jexkv.TaskQueue))


def _logged(queue: str, handler: Callable[[Job], Any]) -> Callable[[Job], Any]:
    """``handler``, logging each job's start and end; an async handler stays one."""

    def started(job: Job) -> float:
        log.info("job %s (%s) on %s started", job.id, job.name, queue)
        return time.monotonic()

    def ended(job: Job, began: float, exc: BaseException | None) -> None:
        took = (time.monotonic() - began) * 1000
        if exc is None:
            log.info("job %s (%s) on %s done in %.1f ms", job.id, job.name, queue, took)
        else:
            log.info("job %s (%s) on %s failed after %.1f ms: %s", job.id, job.name, queue, took,
                     f"{type(exc).__name__}: {exc}")  # fmt: skip

    if is_async_handler(handler):

        async def run_async(job: Job) -> Any:
            began = started(job)
            try:
                result = await handler(job)
            except BaseException as exc:  # as the engine: a SystemExit fails the job too
                ended(job, began, exc)
                raise
            ended(job, began, None)
            return result

        return run_async

    def call(run: Callable[..., Any], job: Job, *args: Any) -> Any:
        began = started(job)
        try:
            result = run(job, *args)
        except BaseException as exc:  # as the engine: a SystemExit fails the job too
            ended(job, began, exc)
            raise
        ended(job, began, None)
        return result

    logged: Any = functools.partial(call, handler)
    bounded = getattr(handler, "call_with_timeout", None)
    if bounded is not None:  # a process handler: its timeouts and children stay its own
        logged.call_with_timeout = functools.partial(call, bounded)
        logged.close = handler.close  # type: ignore[attr-defined]
    return logged  # type: ignore[no-any-return]


def _load(target: str) -> Callable[[Any], Any]:
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise UserError(f"the worker target must be MODULE:FUNCTION, got {target!r}")
    sys.path.insert(0, os.getcwd())  # like `python -m`: modules of the working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import module {module_name!r}: {exc}") from exc
    setup = getattr(module, function_name, None)
    if not callable(setup):
        raise UserError(f"module {module_name!r} has no function {function_name!r}")
    return setup  # type: ignore[no-any-return]


def run_worker(url: str, target: str, concurrency: int, processes: int | None = None) -> int:
    """``jexkv worker``: ``processes`` (--processes N) runs N child processes per queue."""
    if concurrency < 1:
        raise UserError(f"--concurrency must be 1 or more, got {concurrency}")
    if processes is not None and processes < 1:
        raise UserError(f"--processes must be 1 or more, got {processes}")
    if processes is not None:
        concurrency = processes
    setup = _load(target)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parse_url(url, {}, "queue")  # a bad URL fails here, before the setup runs
    if inspect.iscoroutinefunction(setup):
        return asyncio.run(_run_async(url, target, concurrency, setup, processes is not None))
    proxy = _SetupQueue(url, concurrency, target, jexkv.open_queue, processes is not None)
    stop = threading.Event()
    try:
        setup(proxy)
        _ready(proxy, target, url)
        signal.signal(signal.SIGINT, lambda signum, frame: _on_signal(stop.is_set, stop.set))
        signal.signal(signal.SIGTERM, lambda signum, frame: _on_signal(stop.is_set, stop.set))
        proxy.start()
        while not stop.wait(0.5):
            pass
        log.info("stopping: waiting for running jobs (a second signal stops at once)")
    finally:
        proxy.close()
    log.info("stopped")
    return 0


async def _run_async(
    url: str, target: str, concurrency: int, setup: Callable[[Any], Any], processes: bool
) -> int:
    """An ``async def`` setup: awaited, and its workers run, on this process's loop."""
    import jexkv.aio

    proxy = _SetupQueue(url, concurrency, target, jexkv.aio.open_queue, processes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await setup(proxy)
        _ready(proxy, target, url)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, stop.is_set, stop.set)
        proxy.start()
        await stop.wait()
        log.info("stopping: waiting for running jobs (a second signal stops at once)")
    finally:
        await proxy.aclose()
    log.info("stopped")
    return 0


def _ready(proxy: _SetupQueue, target: str, url: str) -> None:
    if not proxy.registered:
        raise UserError(f"{target} registered no worker (call queue.register_worker)")
    log.info("worker ready: %s on %s", ", ".join(proxy.registered), redact_url(url))


def _on_signal(stopping: Callable[[], bool], stop: Callable[[], None]) -> None:
    """The first SIGINT/SIGTERM stops gracefully, the second at once."""
    if stopping():
        log.warning("second signal: stopping at once, running jobs are abandoned")
        os._exit(1)
    stop()
