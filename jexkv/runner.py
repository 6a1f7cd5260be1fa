"""``jexkv worker MODULE:FUNCTION``: run the workers a user's setup function registers.

Rule: the process stops gracefully on the first SIGINT or SIGTERM (no new jobs are
fetched, running jobs finish and are recorded), and at once on the second. Each
job's start, end, duration and failure is logged on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import jexkv
from jexkv.jobs import Job
from jexkv.queue_args import already_registered
from jexkv.urls import parse_url, redact_url

__all__ = ["UserError", "run_worker"]

log = logging.getLogger("jexkv.worker")


class UserError(Exception):
    """A mistake of the command line's user: reported in one line, exit code 2 (cli.py)."""


class _SetupQueue:
    """The TaskQueue handed to the setup function. register_worker applies the command's
    --concurrency as its default and logs every job; workers start only once the setup
    function has returned and "ready" is logged, so no job runs before that line. The
    store is opened on first use, so a target that is no setup function creates nothing."""

    def __init__(self, url: str, concurrency: int, target: str) -> None:
        self._url = url
        self._opened: jexkv.TaskQueue | None = None
        self._concurrency = concurrency
        self._target = target
        self._pending: list[tuple[str, Callable[[Job], Any], int]] = []

    @property
    def registered(self) -> list[str]:
        return [queue for queue, _, _ in self._pending]

    def register_worker(
        self, queue: str, handler: Callable[[Job], Any], *, concurrency: int | None = None
    ) -> None:
        if not callable(handler):
            raise jexkv.InvalidArgumentType(
                f"handler must be callable, got {type(handler).__name__}"
            )
        if queue in self.registered:
            raise already_registered(queue)
        self._pending.append((queue, _logged(queue, handler), concurrency or self._concurrency))

    def start(self) -> None:
        for queue, handler, concurrency in self._pending:
            self.queue.register_worker(queue, handler, concurrency=concurrency)

    def __getattr__(self, name: str) -> Any:
        if name in _JOB_ONLY:  # the setup function treats its argument as a Job
            raise UserError(
                f"{self._target} read .{name} of its argument, as a job handler does: "
                "point `jexkv worker` at a setup function that takes the queue and calls "
                "queue.register_worker(QUEUE, handler)"
            )
        return getattr(self.queue, name)

    @property
    def queue(self) -> jexkv.TaskQueue:
        if self._opened is None:
            self._opened = jexkv.open_queue(self._url)
        return self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


# Attributes of a Job that a TaskQueue does not have.
_JOB_ONLY = frozenset(f.name for f in dataclasses.fields(Job)) - set(dir(jexkv.TaskQueue))


def _logged(queue: str, handler: Callable[[Job], Any]) -> Callable[[Job], Any]:
    def run(job: Job) -> Any:
        log.info("job %s (%s) on %s started", job.id, job.name, queue)
        started = time.monotonic()
        try:
            result = handler(job)
        except BaseException as exc:  # as the engine: a SystemExit fails the job too
            took = (time.monotonic() - started) * 1000
            log.info("job %s (%s) on %s failed after %.1f ms: %s", job.id, job.name, queue, took,
                     f"{type(exc).__name__}: {exc}")  # fmt: skip
            raise
        took = (time.monotonic() - started) * 1000
        log.info("job %s (%s) on %s done in %.1f ms", job.id, job.name, queue, took)
        return result

    return run


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


def run_worker(url: str, target: str, concurrency: int) -> int:
    if concurrency < 1:
        raise UserError(f"--concurrency must be 1 or more, got {concurrency}")
    setup = _load(target)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parse_url(url, {}, "queue")  # a bad URL fails here, before the setup runs
    proxy = _SetupQueue(url, concurrency, target)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("second signal: stopping at once, running jobs are abandoned")
            os._exit(1)
        stop.set()

    try:
        setup(proxy)
        if not proxy.registered:
            raise UserError(f"{target} registered no worker (call queue.register_worker)")
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        log.info("worker ready: %s on %s", ", ".join(proxy.registered), redact_url(url))
        proxy.start()
        while not stop.wait(0.5):
            pass
        log.info("stopping: waiting for running jobs (a second signal stops at once)")
    finally:
        proxy.close()
    log.info("stopped")
    return 0
