"""Workers: the engine's steps carried out in threads, for the sync TaskQueue.

Rule: what a worker does lives in jexkv/engine.py; here it runs. Per registered queue,
``concurrency`` threads each drive one slot program over the sync backend, and one upkeep
thread per TaskQueue renews leases and checks for stalled jobs. A queue whose handler is an
``async def`` function runs on an event loop this TaskQueue owns in one background thread
instead, ``concurrency`` tasks at once (jexkv/tasks.py): a hundred concurrent webhook
calls need no hundred threads. Signals reach the main thread only, so a
``KeyboardInterrupt`` there still stops the program.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from jexkv import engine
from jexkv.contracts import QueueBackend
from jexkv.engine import Program, Queue, Settings, attempt_timeout_s, is_async_handler
from jexkv.errors import ClosedError
from jexkv.jobs import Job
from jexkv.programs import drive
from jexkv.queue_args import already_registered
from jexkv.timeouts import TimedThreads

__all__ = ["Workers"]


class _Driver:
    """Carries out one program's steps over a sync backend, in the calling thread."""

    def __init__(
        self,
        workers: Workers,
        program: Program,
        stop: threading.Event,
        q: Queue | None = None,
        timed: TimedThreads | None = None,
    ) -> None:
        self.workers = workers
        self.program = program
        self.stop = stop  # what ends a pause early
        self.q = q  # a slot's queue: its handler runs the RUN steps
        self.timed = timed  # where calls with a timeout run (timeouts.py)

    def run(self) -> None:
        w = self.workers
        backend, stop, idle_wait_s = w.backend, self.stop, w.idle_wait_s
        q, timed = self.q, self.timed
        handler: Any = None if q is None else q.handler
        own_timeout = getattr(handler, "call_with_timeout", None)  # a process handler's
        raised = engine.Raised

        def do(step: Any) -> Any:
            if type(step) is Job:  # RUN: a slot's driver has a handler
                try:
                    timeout = attempt_timeout_s(q, step)  # type: ignore[arg-type]
                    if own_timeout is not None:
                        return own_timeout(step, timeout)
                    if timeout is None or timed is None:
                        return handler(step)
                    return timed.call(handler, step, timeout)
                except BaseException as exc:  # the attempt fails; the slot goes on
                    return raised(exc)
            op = step[0]  # a tuple: a backend step, or a wait
            if op == engine.WAIT:
                return backend.wait(step[1], step[2], idle_wait_s, stop)
            if op == engine.PAUSE:
                stop.wait(step[1])
                return None
            return getattr(backend, op)(*step[1:])

        drive(self.program, do)


class Workers:
    """The workers of one TaskQueue object: threads (and a loop for async handlers)."""

    def __init__(self, backend: QueueBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self.stopping = threading.Event()
        self.upkeep_stop = threading.Event()
        self.idle_wait_s = engine.IDLE_WAIT_S
        self._queues: dict[str, Queue] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._upkeep: threading.Thread | None = None
        self._tasks: Any = None  # tasks.LoopWorkers, for async handlers (started on need)
        self._timed: list[TimedThreads] = []

    def start(
        self,
        queue: str,
        handler: Callable[[Job], Any],
        concurrency: int,
        timeout_ms: int | None = None,
    ) -> None:
        with self._lock:
            if self.stopping.is_set():
                raise ClosedError("this task queue is closed")
            if queue in self._queues:
                raise already_registered(queue)
            q = self._queues[queue] = Queue(queue, handler, timeout_ms)
            if is_async_handler(handler):
                if self._tasks is None:
                    from jexkv.tasks import LoopWorkers

                    self._tasks = LoopWorkers(self.backend, self.settings)
                self._tasks.start(q, concurrency, handler)
            else:
                stopping = self.stopping.is_set
                timed = TimedThreads(queue, concurrency)
                self._timed.append(timed)
                for i in range(1, concurrency + 1):
                    program = engine.slot_steps(q, self.settings, stopping)
                    driver = _Driver(self, program, self.stopping, q, timed)
                    thread = threading.Thread(
                        target=driver.run, name=f"jexkv-worker-{queue}-{i}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
            if self._upkeep is None:
                program = engine.upkeep_steps(
                    lambda: list(self._queues.values()), self.settings, self.upkeep_stop.is_set
                )
                driver = _Driver(self, program, self.upkeep_stop)
                self._upkeep = threading.Thread(target=driver.run, name="jexkv-lease", daemon=True)
                self._upkeep.start()

    def stop(self, timeout_s: float | None) -> list[str]:
        """Stop fetching and wait for running handlers (up to ``timeout_s``); the ids of the
        jobs whose handlers were still running when the wait gave up."""
        with self._lock:
            self.stopping.set()
            queues = list(self._queues.values())
            threads = list(self._threads)
        for q in queues:
            self.backend.notify(q.name)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if self._tasks is not None:
            self._tasks.stop(deadline)
        for thread in threads:
            if thread is threading.current_thread():
                continue  # close() called from a handler: it cannot wait for itself
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        abandoned = [job_id for q in queues for job_id, _ in q.held()]
        # Leases are renewed until the handlers are done (or the wait gave up).
        self.upkeep_stop.set()
        if self._upkeep is not None and self._upkeep is not threading.current_thread():
            self._upkeep.join()
        for timed in self._timed:
            timed.shutdown()
        for q in queues:
            close = getattr(q.handler, "close", None)  # a process handler's children
            if close is not None:
                close(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return abandoned
