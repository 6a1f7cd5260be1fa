"""AsyncJobQueue: the asyncio TaskQueue over any async queue backend.

Rules:
* Arguments are checked by jexkv/queue_args.py, as the sync JobQueue checks them, before the
  backend is touched; the backend's steps are coroutines: AsyncRedisQueueBackend (the
  asyncio client, no thread), or an OffLoopBackend over the memory (inline) or SQLite (in
  threads) backend.
* Workers run on the loop that registers them (jexkv/tasks.py's TaskWorkers, the engine's
  programs as tasks): an ``async def`` handler as tasks, a plain one in threads.
* ``aclose(timeout_ms)`` stops fetching, lets running handlers finish up to the timeout,
  cancels the rest and hands their jobs back (or leaves them to their leases): never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from jexkv.engine import Queue, Settings
from jexkv.errors import ClosedError, ConfigError
from jexkv.jobs import Backoff, Job
from jexkv.namespaces import check_queue_name
from jexkv.queue_args import (
    check_close,
    check_enqueue,
    check_enqueue_many,
    check_job,
    check_list,
    check_retry,
    check_wait,
    check_worker,
    log_abandoned,
)
from jexkv.schedules import Schedule, check_schedule, check_schedule_id
from jexkv.tasks import TaskWorkers

__all__ = ["AsyncJobQueue"]

log = logging.getLogger("jexkv")


class AsyncJobQueue:
    """A task queue for asyncio code: enqueue from any task, run jobs on this loop."""

    def __init__(
        self,
        backend: Any,
        *,
        description: str,
        lease_ms: int = 30_000,
        keep_completed: int = 0,
        keep_dead: int | None = None,
        max_stalls: int = 1,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._backend = backend
        self._description = description
        self._settings = Settings(lease_ms, keep_completed, keep_dead, max_stalls)
        self._on_close = on_close
        self._closed = False
        self._workers: TaskWorkers | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this task queue on {self._description} is closed")

    async def enqueue(
        self,
        queue: str,
        name: str,
        payload: Any = None,
        *,
        delay_ms: int = 0,
        attempts: int = 1,
        backoff: None | int | Backoff = None,
        priority: int = 0,
        job_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> Job:
        self._check_open()
        new = check_enqueue(
            queue, name, payload, delay_ms, attempts, backoff, priority, job_id, timeout_ms
        )
        return (await self._backend.add(queue, [new]))[0]  # type: ignore[no-any-return]

    async def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        self._check_open()
        checked = check_enqueue_many(queue, jobs)
        return await self._backend.add(queue, checked) if checked else []

    def register_worker(
        self,
        queue: str,
        handler: Callable[[Job], Any],
        *,
        concurrency: int = 1,
        processes: bool = False,
        timeout_ms: int | None = None,
        max_jobs_per_process: int | None = None,
    ) -> None:
        """Run ``handler`` on the jobs of ``queue``, ``concurrency`` at once, as tasks of the
        running loop (a plain handler in threads of its own, or with ``processes=True`` in
        a child process per slot); ``timeout_ms`` bounds an attempt (a job's own wins)."""
        self._check_open()
        name, run, timeout = check_worker(
            queue, handler, concurrency, processes, timeout_ms, max_jobs_per_process
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                "register_worker() of jexkv.aio must be called while an event loop runs "
                "(from async code); the sync jexkv.open_queue() runs workers without one"
            ) from None
        if self._workers is None:
            self._loop = loop
            self._workers = TaskWorkers(self._backend, self._settings)
        elif loop is not self._loop:
            raise ConfigError("this queue's workers run on another event loop")
        self._workers.start(Queue(name, run, timeout), concurrency, run)

    async def get_job(self, queue: str, job_id: str) -> Job | None:
        self._check_open()
        return await self._backend.get(check_job(queue, job_id), job_id)  # type: ignore[no-any-return]

    async def wait_for(self, queue: str, job_id: str, *, timeout_ms: int | None = None) -> Job:
        """The job once it has finished (TaskQueue.wait_for); other tasks run meanwhile."""
        self._check_open()
        name = check_wait(queue, job_id, timeout_ms)
        s = self._settings
        return await self._backend.wait_for(  # type: ignore[no-any-return]
            name, job_id, timeout_ms, s.keep_completed, s.keep_dead
        )

    async def schedule(
        self,
        queue: str,
        schedule_id: str,
        name: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every_ms: int | None = None,
        tz: str | None = None,
        start_at_ms: int | None = None,
        end_at_ms: int | None = None,
        limit: int | None = None,
        attempts: int = 1,
        backoff: None | int | Backoff = None,
        priority: int = 0,
    ) -> Schedule:
        self._check_open()
        name_ = check_queue_name(queue)
        spec = check_schedule(
            schedule_id, name, payload, cron=cron, every_ms=every_ms, tz=tz,
            start_at_ms=start_at_ms, end_at_ms=end_at_ms, limit=limit, attempts=attempts,
            backoff=backoff, priority=priority,
        )  # fmt: skip
        return await self._backend.schedule(name_, spec)  # type: ignore[no-any-return]

    async def schedules(self, queue: str) -> list[Schedule]:
        self._check_open()
        return await self._backend.schedules(check_queue_name(queue))  # type: ignore[no-any-return]

    async def unschedule(self, queue: str, schedule_id: str) -> bool:
        self._check_open()
        name = check_queue_name(queue)
        return await self._backend.unschedule(name, check_schedule_id(schedule_id))  # type: ignore[no-any-return]

    async def counts(self, queue: str) -> dict[str, int]:
        self._check_open()
        return await self._backend.counts(check_queue_name(queue))  # type: ignore[no-any-return]

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[Job]:
        return await self.jobs(queue, "dead", limit=limit)

    async def jobs(self, queue: str, state: str = "waiting", *, limit: int = 100) -> list[Job]:
        self._check_open()
        name = check_list(queue, state, limit)
        return await self._backend.list_jobs(name, state, limit)  # type: ignore[no-any-return]

    async def retry_dead(self, queue: str, job_id: str | None = None) -> int:
        self._check_open()
        return await self._backend.retry_dead(check_retry(queue, job_id), job_id)  # type: ignore[no-any-return]

    async def purge_dead(self, queue: str) -> int:
        self._check_open()
        return await self._backend.purge_dead(check_queue_name(queue))  # type: ignore[no-any-return]

    async def pause(self, queue: str) -> None:
        self._check_open()
        await self._backend.set_paused(check_queue_name(queue), True)

    async def resume(self, queue: str) -> None:
        self._check_open()
        await self._backend.set_paused(check_queue_name(queue), False)

    async def is_paused(self, queue: str) -> bool:
        self._check_open()
        return await self._backend.is_paused(check_queue_name(queue))  # type: ignore[no-any-return]

    async def aclose(self, timeout_ms: int | None = None) -> None:
        """Stop fetching, let running handlers finish (up to ``timeout_ms``), cancel the
        rest and hand their jobs back, release the backend."""
        timeout_s = check_close(timeout_ms)
        if self._closed:
            return
        self._closed = True
        try:
            if self._workers is not None:
                cancelled = await self._workers.stop(timeout_s)
                log_abandoned(timeout_ms, self._description, cancelled, "aclose")
        finally:
            await self._backend.aclose()
            if self._on_close is not None:
                self._on_close()

    async def __aenter__(self) -> AsyncJobQueue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncJobQueue {self._description}{' closed' if self._closed else ''}>"
