"""JobQueue: the TaskQueue contract over any QueueBackend.

Rule: arguments are checked here (jobs.new_job) before the backend is called,
so bad input enqueues nothing; the backend does the atomic steps and
worker.Workers runs the handlers. The same class serves every adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from jexkv.contracts import QueueBackend
from jexkv.engine import Settings
from jexkv.errors import ClosedError
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
from jexkv.worker import Workers

__all__ = ["JobQueue"]


class JobQueue:
    """A task queue: enqueue from anywhere, run jobs on registered worker threads."""

    def __init__(
        self,
        backend: QueueBackend,
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
        self._on_close = on_close
        self._closed = False
        self._close_lock = threading.Lock()
        self._settings = Settings(lease_ms, keep_completed, keep_dead, max_stalls)
        self._workers = Workers(backend, self._settings)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this task queue on {self._description} is closed")

    def enqueue(
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
        return self._backend.add(queue, [new])[0]

    def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        self._check_open()
        checked = check_enqueue_many(queue, jobs)
        return self._backend.add(queue, checked) if checked else []

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
        """Run ``handler`` on the jobs of ``queue``, ``concurrency`` at once: in threads, or,
        for an ``async def`` handler, as tasks on an event loop this queue runs in a thread,
        or (``processes=True``) in a child process per slot. ``timeout_ms`` bounds an
        attempt (a job's own wins)."""
        self._check_open()
        name, run, timeout = check_worker(
            queue, handler, concurrency, processes, timeout_ms, max_jobs_per_process
        )
        self._workers.start(name, run, concurrency, timeout)

    def get_job(self, queue: str, job_id: str) -> Job | None:
        self._check_open()
        return self._backend.get(check_job(queue, job_id), job_id)

    def wait_for(self, queue: str, job_id: str, *, timeout_ms: int | None = None) -> Job:
        """The job once it has finished: ``completed`` with its result, or ``dead`` with its
        error; WaitTimeout when ``timeout_ms`` passes first (jexkv/waiting.py)."""
        self._check_open()
        name = check_wait(queue, job_id, timeout_ms)
        s = self._settings
        return self._backend.wait_for(name, job_id, timeout_ms, s.keep_completed, s.keep_dead)

    def schedule(
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
        """Make (or replace) a periodic or cron schedule of jobs (jexkv/schedules.py)."""
        self._check_open()
        name_ = check_queue_name(queue)
        spec = check_schedule(
            schedule_id, name, payload, cron=cron, every_ms=every_ms, tz=tz,
            start_at_ms=start_at_ms, end_at_ms=end_at_ms, limit=limit, attempts=attempts,
            backoff=backoff, priority=priority,
        )  # fmt: skip
        return self._backend.schedule(name_, spec)

    def schedules(self, queue: str) -> list[Schedule]:
        self._check_open()
        return self._backend.schedules(check_queue_name(queue))

    def unschedule(self, queue: str, schedule_id: str) -> bool:
        self._check_open()
        name = check_queue_name(queue)
        return self._backend.unschedule(name, check_schedule_id(schedule_id))

    def counts(self, queue: str) -> dict[str, int]:
        self._check_open()
        return self._backend.counts(check_queue_name(queue))

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[Job]:
        return self.jobs(queue, "dead", limit=limit)

    def jobs(self, queue: str, state: str = "waiting", *, limit: int = 100) -> list[Job]:
        self._check_open()
        return self._backend.list_jobs(check_list(queue, state, limit), state, limit)

    def retry_dead(self, queue: str, job_id: str | None = None) -> int:
        self._check_open()
        return self._backend.retry_dead(check_retry(queue, job_id), job_id)

    def purge_dead(self, queue: str) -> int:
        self._check_open()
        return self._backend.purge_dead(check_queue_name(queue))

    def pause(self, queue: str) -> None:
        self._check_open()
        self._backend.set_paused(check_queue_name(queue), True)

    def resume(self, queue: str) -> None:
        self._check_open()
        self._backend.set_paused(check_queue_name(queue), False)

    def is_paused(self, queue: str) -> bool:
        self._check_open()
        return self._backend.is_paused(check_queue_name(queue))

    def close(self, timeout_ms: int | None = None) -> None:
        """Stop fetching, wait for running handlers (up to ``timeout_ms``), release."""
        timeout_s = check_close(timeout_ms)
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        log_abandoned(timeout_ms, self._description, self._workers.stop(timeout_s))
        self._backend.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JobQueue {self._description}{' closed' if self._closed else ''}>"
