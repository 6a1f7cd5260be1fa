"""``jexkv worker MODULE:FUNCTION``: run the workers a user's setup function registers.

Rule: the process stops gracefully on the first SIGINT or SIGTERM (no new jobs are
fetched, running jobs finish and are recorded), and at once on the second. Each
job's start, end, duration and failure is logged on stderr.
"""

from __future__ import annotations

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
from jexkv.urls import redact_url

__all__ = ["run_worker"]

log = logging.getLogger("jexkv.worker")


class _SetupQueue:
    """The TaskQueue handed to the setup function: register_worker applies the
    command's --concurrency as its default and logs every job; the rest passes on."""

    def __init__(self, queue: jexkv.TaskQueue, concurrency: int) -> None:
        self._queue = queue
        self._concurrency = concurrency
        self.registered: list[str] = []

    def register_worker(
        self, queue: str, handler: Callable[[Job], Any], *, concurrency: int | None = None
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self._queue.register_worker(
            queue, _logged(queue, handler), concurrency=concurrency or self._concurrency
        )
        self.registered.append(queue)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def _logged(queue: str, handler: Callable[[Job], Any]) -> Callable[[Job], Any]:
    def run(job: Job) -> Any:
        log.info("job %s (%s) on %s started", job.id, job.name, queue)
        started = time.monotonic()
        try:
            result = handler(job)
        except Exception as exc:
            took = (time.monotonic() - started) * 1000
            log.info("job %s (%s) on %s failed after %.1f ms: %s", job.id, job.name, queue, took,
                     f"{type(exc).__name__}: {exc}")  # fmt: skip
            raise
        took = (time.monotonic() - started) * 1000
        log.info("job %s (%s) on %s done in %.1f ms", job.id, job.name, queue, took)
        return result

    return run


def _load(target: str) -> Callable[[Any], Any]:
    from jexkv.cli import UserError

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
    from jexkv.cli import UserError

    if concurrency < 1:
        raise UserError(f"--concurrency must be 1 or more, got {concurrency}")
    setup = _load(target)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    queue = jexkv.open_queue(url)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("second signal: stopping at once, running jobs are abandoned")
            os._exit(1)
        stop.set()

    try:
        proxy = _SetupQueue(queue, concurrency)
        setup(proxy)
        if not proxy.registered:
            raise UserError(f"{target} registered no worker (call queue.register_worker)")
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        log.info("jexkv worker ready: %s on %s", ", ".join(proxy.registered), redact_url(url))
        while not stop.wait(0.5):
            pass
        log.info("stopping: waiting for running jobs (a second signal stops at once)")
    finally:
        queue.close()
    log.info("stopped")
    return 0
