"""TaskWorkers: the engine's steps carried out in asyncio tasks (docs/engine.md).

Rules:
* What a worker does lives in jexkv/engine.py; here it runs as tasks on one event loop,
  over an async backend (the same steps as coroutines): ``concurrency`` slot tasks per
  queue, one upkeep task, one watchdog. An ``async def`` handler is awaited in its slot's
  task; a plain handler runs in a thread of the queue's own pool of ``concurrency`` threads,
  so it never blocks the loop.
* ``OffLoopBackend`` gives a sync backend's steps as coroutines, each run in a thread of a
  small pool (a SQLite write that waits on another process's lock never blocks the loop),
  or inline for memory; its idle waits are the wake-ups' own ``wait_async``, with no
  thread. The sync TaskQueue runs its ``async def`` handlers this way, on a loop it owns in
  one background thread (``LoopWorkers``).
* Stopping: fetching stops, claimed jobs not started are handed back, running handlers may
  finish until the deadline; then their tasks are cancelled and their jobs handed back
  (``release``: the attempt does not count), or, if that fails, left to their leases:
  never lost.
* The watchdog notices a loop that did not run for ``BLOCKED_S``: an async handler that
  blocks (``time.sleep``, blocking I/O) stalls every task of the loop, and the log says
  which jobs were running then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any, Callable

from jexkv import engine
from jexkv.contracts import QueueBackend
from jexkv.engine import (
    Program,
    Queue,
    Raised,
    Settings,
    attempt_timeout_s,
    is_async_handler,
    run_handler,
    timed_out,
)
from jexkv.errors import ClosedError
from jexkv.group_commit import GroupCommit
from jexkv.jobs import Job
from jexkv.offloop import OffLoop
from jexkv.programs import drive_async
from jexkv.queue_args import already_registered
from jexkv.timeouts import TimedThreads
from jexkv.waiting import wait_local_async

__all__ = ["BLOCKED_S", "LoopWorkers", "OffLoopBackend", "TaskWorkers"]

log = logging.getLogger("jexkv")

BLOCKED_S = 0.25  # a loop that did not run for this long was blocked by something
_WATCH_S = 0.05  # how often the watchdog looks
_REPORT_EVERY_S = 60.0  # the longest a repeating blocked-loop warning stays silent


class OffLoopBackend:
    """A sync QueueBackend's steps as coroutines, through an OffLoop (offloop.py): in its
    threads (SQLite), or inline (memory). Its idle waits are the wake-ups' ``wait_async``,
    on the loop, with no thread."""

    def __init__(self, off: OffLoop[QueueBackend]) -> None:
        self.off = off

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = self.off.method

        async def step(*args: Any) -> Any:
            return await method(name, *args)

        step.__name__ = name
        setattr(self, name, step)  # built once per step name
        return step

    async def ready(self) -> None:
        await self.off.get()

    def _backend(self) -> Any:
        backend = self.off.obj
        if backend is None:
            raise RuntimeError("the queue backend is used before ready()")
        return backend

    def seen(self, queue: str) -> int:
        return self._backend().seen(queue)  # type: ignore[no-any-return]

    def notify(self, queue: str) -> None:
        if self.off.obj is not None:
            self.off.obj.notify(queue)

    async def wait(self, queue: str, seen: int, timeout_s: float) -> None:
        await self._backend().wait_async(queue, seen, timeout_s)

    # wait_for (jexkv/waiting.py): its steps off the loop, its sleeps on it.

    async def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        await self.ready()
        return await wait_local_async(self, queue, job_id, timeout_ms, keep, keep_dead)

    def finish_seen(self, queue: str) -> int:
        return self._backend().finish_seen(queue)  # type: ignore[no-any-return]

    async def finish_wait(self, queue: str, seen: int, timeout_s: float) -> None:
        await self._backend().finish_wait_async(queue, seen, timeout_s)

    async def aclose(self) -> None:
        await self.off.close(lambda backend: backend.close())


class TaskWorkers:
    """The workers of one queue object on one event loop (the loop that started them)."""

    def __init__(self, backend: Any, settings: Settings, *, upkeep: bool = True) -> None:
        self.backend = backend  # the async steps: an async backend, or an OffLoopBackend
        self.settings = settings
        self.idle_wait_s = engine.IDLE_WAIT_S
        self.stopping = False
        self._cancelling = False
        self._queues: dict[str, Queue] = {}
        self._commits: dict[str, GroupCommit] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pools: list[concurrent.futures.ThreadPoolExecutor] = []
        self._timed: list[TimedThreads] = []
        self._upkeep = upkeep
        self._side: list[asyncio.Task[None]] = []  # the upkeep task and the watchdog
        self._stop_side = asyncio.Event()
        self._running: dict[str, str] = {}  # job id -> queue, of async handlers running now
        self._ran: dict[str, str] = {}  # the same, of those that ran since the watchdog looked

    def queues(self) -> list[Queue]:
        return list(self._queues.values())

    def start(self, q: Queue, concurrency: int, handler: Callable[[Job], Any]) -> None:
        """Start ``concurrency`` slot tasks for ``q`` on the running loop."""
        if self.stopping:
            raise ClosedError("this task queue is closed")
        if q.name in self._queues:
            raise already_registered(q.name)
        self._queues[q.name] = q
        self._commits[q.name] = GroupCommit(q.name, self.backend.complete, self.backend.release)
        if is_async_handler(handler):
            run = functools.partial(self._run_async, q)
        else:
            pool = concurrent.futures.ThreadPoolExecutor(concurrency, f"jexkv-worker-{q.name}")
            self._pools.append(pool)
            timed = TimedThreads(q.name, concurrency)
            self._timed.append(timed)
            run = functools.partial(self._run_in_thread, pool, timed, q)
        if not self._side:  # the watchdog first: it must be looking when a slot starts
            self._side.append(asyncio.ensure_future(self._watchdog()))
            if self._upkeep:
                program = engine.upkeep_steps(self.queues, self.settings, self._stop_side.is_set)
                self._side.append(asyncio.ensure_future(self._drive(program, None)))
        stopping = self._is_stopping
        for i in range(1, concurrency + 1):
            program = engine.slot_steps(q, self.settings, stopping)
            task = asyncio.ensure_future(self._drive(program, run))
            self._name(task, f"jexkv-worker-{q.name}-{i}")
            self._tasks.append(task)

    @staticmethod
    def _name(task: asyncio.Task[Any], name: str) -> None:
        if hasattr(task, "set_name"):
            task.set_name(name)

    def _is_stopping(self) -> bool:
        return self.stopping

    async def _run_async(self, q: Queue, job: Job) -> Any:
        self._running[job.id] = self._ran[job.id] = job.queue
        try:
            timeout = attempt_timeout_s(q, job)
            if timeout is None:
                return await q.handler(job)
            task = asyncio.ensure_future(q.handler(job))
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                return task.result()
            task.cancel()  # past its timeout: the coroutine is cancelled
            await asyncio.gather(task, return_exceptions=True)
            return Raised(timed_out(job, timeout))
        except asyncio.CancelledError as exc:
            if self._cancelling:
                raise  # this worker is stopping: the job is handed back
            return Raised(exc)  # the handler's own cancellation fails the attempt
        except BaseException as exc:  # the attempt fails; the slot goes on
            return Raised(exc)
        finally:
            self._running.pop(job.id, None)

    async def _run_in_thread(
        self, pool: concurrent.futures.Executor, timed: TimedThreads, q: Queue, job: Job
    ) -> Any:
        timeout = attempt_timeout_s(q, job)
        own_timeout = getattr(q.handler, "call_with_timeout", None)  # a process handler's
        loop = asyncio.get_running_loop()
        if own_timeout is not None:
            return await loop.run_in_executor(pool, run_handler, own_timeout, job, timeout)
        if timeout is None:
            return await loop.run_in_executor(pool, run_handler, q.handler, job)
        return await timed.acall(q.handler, job, timeout)

    async def _drive(self, program: Program, run: Callable[[Job], Any] | None) -> None:
        b, idle_wait_s = self.backend, self.idle_wait_s

        async def do(step: Any) -> Any:
            if type(step) is Job:  # RUN: a slot's driver has a handler
                return await run(step)  # type: ignore[misc]
            op = step[0]
            if op == engine.WAIT:
                return await b.wait(step[1], step[2], idle_wait_s)
            if op == engine.PAUSE:
                return await self._pause(step[1])
            if op == engine.SEEN:
                return b.seen(step[1])  # no I/O: the wake-ups' own count
            if op == engine.COMPLETE:  # the slots that finish together: one backend call
                return await self._commits[step[1]].complete(*step[2:])
            return await getattr(b, op)(*step[1:])

        await b.ready()
        await drive_async(program, do)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop_side.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        last_report = -_REPORT_EVERY_S
        while not self._stop_side.is_set():
            before = loop.time()
            await asyncio.sleep(_WATCH_S)
            late = loop.time() - before - _WATCH_S
            if late >= BLOCKED_S and loop.time() - last_report >= _REPORT_EVERY_S:
                last_report = loop.time()
                jobs = ", ".join(f"{job} ({queue!r})" for job, queue in self._ran.items())
                log.warning(
                    "the event loop was blocked for %.0f ms%s: an async handler must not "
                    "block (time.sleep, blocking I/O); await asyncio.sleep, or run blocking "
                    "work with asyncio.to_thread",
                    late * 1000,
                    f" while these jobs ran: {jobs}" if jobs else "",
                )
            self._ran = dict(self._running)

    async def stop(self, timeout_s: float | None) -> list[str]:
        """Stop fetching; let running handlers finish up to ``timeout_s``; then cancel the
        rest and hand their jobs back. The ids of the jobs whose handlers were still
        running when the wait gave up."""
        self.stopping = True
        for name in self._queues:
            self.backend.notify(name)
        tasks = [task for task in self._tasks if not task.done()]
        abandoned: list[str] = []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            if late:
                abandoned = [job_id for q in self._queues.values() for job_id, _ in q.held()]
                self._cancelling = True
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        for q in self._queues.values():
            held = q.held()
            if held:  # cancelled mid-run, or claimed and not handed back: back to waiting
                try:
                    await self.backend.release(q.name, held)
                except Exception as exc:
                    q.outage.failed(exc, f"handing back {len(held)} jobs (their leases run out)")
                q.drop(job_id for job_id, _ in held)
        self._stop_side.set()
        if self._side:
            await asyncio.gather(*self._side, return_exceptions=True)
        for pool in self._pools:
            pool.shutdown(wait=False)
        for timed in self._timed:
            timed.shutdown()
        for q in self._queues.values():
            close = getattr(q.handler, "close", None)  # a process handler's children
            if close is not None:
                await asyncio.get_running_loop().run_in_executor(None, close, timeout_s)
        return abandoned


class LoopWorkers:
    """The sync TaskQueue's queues with ``async def`` handlers: their slots as tasks on an
    event loop this object owns in one background thread, over the sync backend's steps
    run in a few threads. The TaskQueue's own upkeep thread renews their leases."""

    def __init__(self, backend: QueueBackend, settings: Settings) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(4, "jexkv-steps")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jexkv-async-workers", daemon=True
        )
        self._thread.start()
        steps = OffLoopBackend(OffLoop.of(backend, self._executor))
        self._workers = self._call(lambda: TaskWorkers(steps, settings, upkeep=False))

    def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on the loop (some asyncio objects must be made there)."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result()

    def start(self, q: Queue, concurrency: int, handler: Callable[[Job], Any]) -> None:
        self._call(lambda: self._workers.start(q, concurrency, handler))

    def stop(self, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        asyncio.run_coroutine_threadsafe(self._workers.stop(timeout), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._executor.shutdown(wait=False)
