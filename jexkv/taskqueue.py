"""JobQueue: the TaskQueue contract over any QueueBackend.

Rule: arguments are checked here (jobs.new_job) before the backend is called,
so bad input enqueues nothing; the backend does the atomic steps and
worker.Workers runs the handlers. The same class serves every adapter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from jexkv.contracts import QueueBackend
from jexkv.errors import ClosedError, InvalidArgument, InvalidArgumentType
from jexkv.jobs import STATES, Backoff, Job, new_job
from jexkv.namespaces import check_queue_name as check_queue
from jexkv.worker import Workers

__all__ = ["JobQueue"]

log = logging.getLogger("jexkv")

_JOB_KEYS = frozenset({"name", "payload", "delay_ms", "attempts", "backoff", "priority", "job_id"})


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
        self._workers = Workers(
            backend,
            lease_ms=lease_ms,
            keep_completed=keep_completed,
            keep_dead=keep_dead,
            max_stalls=max_stalls,
        )

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
    ) -> Job:
        self._check_open()
        check_queue(queue)
        job = new_job(
            name,
            payload,
            delay_ms=delay_ms,
            attempts=attempts,
            backoff=backoff,
            priority=priority,
            job_id=job_id,
        )
        return self._backend.add(queue, [job])[0]

    def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        self._check_open()
        check_queue(queue)
        checked = []
        for i, item in enumerate(jobs):
            if not isinstance(item, Mapping):
                raise InvalidArgumentType(
                    f"enqueue_many: item {i} must be a dict, got {type(item).__name__}"
                )
            unknown = set(item) - _JOB_KEYS
            if unknown:
                raise InvalidArgument(f"enqueue_many: item {i} has unknown keys {sorted(unknown)}")
            if "name" not in item:
                raise InvalidArgument(f"enqueue_many: item {i} has no 'name'")
            args = dict(item)
            checked.append(new_job(args.pop("name"), args.pop("payload", None), **args))
        return self._backend.add(queue, checked) if checked else []

    def register_worker(
        self, queue: str, handler: Callable[[Job], Any], *, concurrency: int = 1
    ) -> None:
        self._check_open()
        check_queue(queue)
        if not callable(handler):
            raise InvalidArgumentType(f"handler must be callable, got {type(handler).__name__}")
        if type(concurrency) is not int or concurrency < 1:
            raise InvalidArgument(f"concurrency must be an int >= 1, got {concurrency!r}")
        self._workers.start(queue, handler, concurrency)

    def get_job(self, queue: str, job_id: str) -> Job | None:
        self._check_open()
        check_queue(queue)
        if not isinstance(job_id, str):
            raise InvalidArgumentType(f"job_id must be a str, got {type(job_id).__name__}")
        return self._backend.get(queue, job_id)

    def counts(self, queue: str) -> dict[str, int]:
        self._check_open()
        return self._backend.counts(check_queue(queue))

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[Job]:
        return self.jobs(queue, "dead", limit=limit)

    def jobs(self, queue: str, state: str = "waiting", *, limit: int = 100) -> list[Job]:
        self._check_open()
        check_queue(queue)
        if state not in STATES:
            raise InvalidArgument(f"state must be one of {', '.join(STATES)}; got {state!r}")
        if type(limit) is not int or limit < 0:
            raise InvalidArgument(f"limit must be an int >= 0, got {limit!r}")
        return self._backend.list_jobs(queue, state, limit)

    def retry_dead(self, queue: str, job_id: str | None = None) -> int:
        self._check_open()
        check_queue(queue)
        if job_id is not None and not isinstance(job_id, str):
            raise InvalidArgumentType(f"job_id must be a str or None, got {type(job_id).__name__}")
        return self._backend.retry_dead(queue, job_id)

    def purge_dead(self, queue: str) -> int:
        self._check_open()
        return self._backend.purge_dead(check_queue(queue))

    def pause(self, queue: str) -> None:
        self._check_open()
        self._backend.set_paused(check_queue(queue), True)

    def resume(self, queue: str) -> None:
        self._check_open()
        self._backend.set_paused(check_queue(queue), False)

    def is_paused(self, queue: str) -> bool:
        self._check_open()
        return self._backend.is_paused(check_queue(queue))

    def close(self, timeout_ms: int | None = None) -> None:
        """Stop fetching, wait for running handlers (up to ``timeout_ms``), release."""
        if timeout_ms is not None and (type(timeout_ms) is not int or timeout_ms < 0):
            raise InvalidArgument(f"timeout_ms must be an int >= 0 or None, got {timeout_ms!r}")
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        abandoned = self._workers.stop(None if timeout_ms is None else timeout_ms / 1000.0)
        if abandoned:
            log.warning(
                "close(timeout_ms=%s) on %s gave up on %d running jobs (%s): their handlers "
                "go on, their outcome is not recorded, and each job runs again once its lease "
                "runs out where jobs outlive this queue object (SQLite, Redis, memory://NAME)",
                timeout_ms,
                self._description,
                len(abandoned),
                ", ".join(abandoned[:10]) + (", …" if len(abandoned) > 10 else ""),
            )
        self._backend.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JobQueue {self._description}{' closed' if self._closed else ''}>"
