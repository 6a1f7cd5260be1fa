"""RedisQueueBackend: the queue steps on Redis in BullMQ v6's data layout, over the sync client.

Rules:
* The steps are queue_ops.py's (scripts, their keys and arguments, BullMQ's layout); here they
  are sent over the sync client, as redis/aio_queue.py sends them over the asyncio one.
* An idle process never polls: idle workers wait on their queue's wake-ups, and a few watcher
  threads per store block on the markers of every waiting queue (redis/markers.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from jexkv.clock import now_ms
from jexkv.contracts import Claim
from jexkv.errors import ConfigError
from jexkv.jobs import Job, NewJob
from jexkv.redis.markers import MarkerWatch
from jexkv.redis.programs import Program, T, run
from jexkv.redis.queue_ops import QueueOps
from jexkv.redis.scripts import load_scripts
from jexkv.resp.surface import RedisClient
from jexkv.schedules import Schedule, ScheduleSpec
from jexkv.taskqueue import JobQueue

__all__ = ["RedisQueueBackend", "open_redis_queue"]


class RedisQueueBackend:
    """The queue steps of queue_ops.py, run over the sync client."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "bull",
        namespace: str = "",
        keep_completed: int = 0,
        keep_dead: int | None = None,
    ) -> None:
        self._client = client
        self._ops = QueueOps(
            client.slot_groups,
            repr(client),
            prefix=prefix,
            namespace=namespace,
            keep_completed=keep_completed,
            keep_dead=keep_dead,
        )
        self._scripts = load_scripts(client)
        self._wakeups = self._ops.wakeups
        self._markers = MarkerWatch(client, self._wakeups)

    def _run(self, step: Program[T]) -> T:
        return run(step, self._client, self._scripts)

    # -- the QueueBackend steps --------------------------------------------------------

    def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
        return self._run(self._ops.add(queue, jobs))

    def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        return self._run(self._ops.fetch(queue, lease_ms, limit))

    def seen(self, queue: str) -> int:
        return self._wakeups.seen(queue)

    def wait(self, queue: str, seen: int, timeout_s: float, stop: threading.Event) -> None:
        self._markers.watch(queue, *self._ops.marker(queue))
        self._wakeups.wait(queue, seen, timeout_s, stop, now_ms())

    async def wait_async(self, queue: str, seen: int, timeout_s: float) -> None:
        self._markers.watch(queue, *self._ops.marker(queue))
        await self._wakeups.wait_async(queue, seen, timeout_s, now_ms())

    def notify(self, queue: str) -> None:
        self._wakeups.bump(queue)

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        return self._run(self._ops.complete(queue, done, keep, next_lease_ms, next_limit))

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        self._run(self._ops.release(queue, held))

    def fail(
        self,
        queue: str,
        job_id: str,
        token: str,
        error: str,
        traceback: str,
        retry_delay_ms: int | None,
        keep_dead: int | None,
    ) -> bool:
        step = self._ops.fail(queue, job_id, token, error, traceback, retry_delay_ms, keep_dead)
        return self._run(step)

    def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        return self._run(self._ops.extend(queue, held, lease_ms))

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        return self._run(self._ops.recover_stalled(queue, max_stalls, interval_ms, keep_dead))

    def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        return self._run(self._ops.wait_for(queue, job_id, timeout_ms))  # keep: in job opts

    def schedule(self, queue: str, spec: ScheduleSpec) -> Schedule:
        return self._run(self._ops.schedule(queue, spec))

    def schedules(self, queue: str) -> list[Schedule]:
        return self._run(self._ops.schedules(queue))

    def unschedule(self, queue: str, schedule_id: str) -> bool:
        return self._run(self._ops.unschedule(queue, schedule_id))

    def get(self, queue: str, job_id: str) -> Job | None:
        return self._run(self._ops.get(queue, job_id))

    def counts(self, queue: str) -> dict[str, int]:
        return self._run(self._ops.counts(queue))

    def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        return self._run(self._ops.list_jobs(queue, state, limit))

    def retry_dead(self, queue: str, job_id: str | None) -> int:
        return self._run(self._ops.retry_dead(queue, job_id))

    def purge_dead(self, queue: str) -> int:
        return self._run(self._ops.purge_dead(queue))

    def set_paused(self, queue: str, paused: bool) -> None:
        self._run(self._ops.set_paused(queue, paused))

    def is_paused(self, queue: str) -> bool:
        return self._run(self._ops.is_paused(queue))

    def close(self) -> None:
        self._markers.close()
        self._client.close()


QUEUE_OPTIONS = ("lease_ms", "keep_completed", "keep_dead", "max_stalls")


def queue_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Redis queue URL's options split: (the backend's keywords, the queue's), leaving
    the client's own in ``options``."""
    prefix = options.pop("prefix", "bull")
    if not prefix or any(c in prefix for c in "\r\n "):
        raise ConfigError(f"option 'prefix' must be a non-empty str without spaces, got {prefix!r}")
    queue = {name: options.pop(name) for name in QUEUE_OPTIONS if name in options}
    backend = dict(
        prefix=prefix,
        namespace=options.pop("namespace", ""),
        keep_completed=queue.get("keep_completed", 0),
        keep_dead=queue.get("keep_dead"),
    )
    return backend, queue


def open_redis_queue(location: str, options: dict[str, Any]) -> JobQueue:
    """A task queue on Redis in BullMQ's layout; ``location`` is the Redis URL."""
    from jexkv.resp.connect import client_for_url

    backend_options, queue = queue_options(options)
    client = client_for_url(location, options)
    backend = RedisQueueBackend(client, **backend_options)
    return JobQueue(backend, description=repr(client), **queue)
