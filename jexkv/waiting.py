"""wait_for: how a caller waits for a job's result, the rules every adapter shares.

Rules:
* A job has finished when its state is ``completed`` or ``dead``; ``wait_for`` returns it
  then (its ``result``, or its ``error``). An id no job on the queue has raises
  JobNotFound; a ``timeout_ms`` that passes first raises WaitTimeout.
* The waiter marks the job as watched *before* it looks at it, so a finish between its look
  and its sleep is never lost, and while a job is watched its finished state is kept even
  with ``keep_completed=0``; when the last waiter leaves, the queue's keep rules apply to it
  again. A mark has an end (``until``), so a waiter that died never keeps a job for ever.
* Waiters sleep on the queue's own signals, never on a poll of the job: memory and SQLite
  have a wake-up per queue for finished jobs (``finishes``: bumped by this process's
  workers, and on SQLite by the store's one watcher thread when another process commits);
  Redis reads BullMQ's events stream (redis/queue_ops.py), so it sees jobs that Node
  workers finish too. A sleep lasts at most ``SLICE_S``.

Memory and SQLite backends give the steps (``watch_start``, ``watch_check``,
``watch_stop``, ``finish_seen``, ``finish_wait``/``finish_wait_async``); :func:`wait_local`
and :func:`wait_local_async` are their two drivers.
"""

from __future__ import annotations

import uuid
from typing import Any

from jexkv.clock import now_ms, steady_ms
from jexkv.errors import JobNotFound, WaitTimeout
from jexkv.jobs import Job

__all__ = [
    "FINISHED",
    "MARK_MS",
    "SLICE_S",
    "Deadline",
    "not_found",
    "wait_local",
    "wait_local_async",
]

FINISHED = ("completed", "dead")
SLICE_S = 10.0  # the longest sleep of a waiter between looks
MARK_MS = 3_600_000  # how long a waiter's mark keeps a job; renewed at half of it


def not_found(queue: str, job_id: str) -> JobNotFound:
    return JobNotFound(
        f"no job {job_id!r} on queue {queue!r} (never added, or finished and removed "
        "before wait_for began)"
    )


class Deadline:
    """When a wait gives up (``timeout_ms`` None: never), by the steady clock."""

    def __init__(self, queue: str, job_id: str, timeout_ms: int | None) -> None:
        self.queue, self.job_id, self.timeout_ms = queue, job_id, timeout_ms
        self.at = None if timeout_ms is None else steady_ms() + timeout_ms

    def left_s(self) -> float:
        """Seconds to sleep next (at most SLICE_S); WaitTimeout once none are left."""
        if self.at is None:
            return SLICE_S
        left = (self.at - steady_ms()) / 1000.0
        if left <= 0:
            raise WaitTimeout(
                f"job {self.job_id!r} on queue {self.queue!r} had not finished after "
                f"{self.timeout_ms} ms"
            )
        return min(left, SLICE_S)


class _Mark:
    """A waiter's mark on the job: its name, and until when it holds (renewed at half)."""

    def __init__(self) -> None:
        self.waiter = uuid.uuid4().hex
        self.until = now_ms() + MARK_MS

    def due(self) -> bool:
        if self.until - now_ms() > MARK_MS // 2:
            return False
        self.until = now_ms() + MARK_MS
        return True


def wait_local(
    backend: Any, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
) -> Job:
    """``wait_for`` over a sync memory or SQLite backend, in the calling thread."""
    deadline, mark = Deadline(queue, job_id, timeout_ms), _Mark()
    job = backend.watch_start(queue, job_id, mark.waiter, mark.until)
    try:
        while job is not None and job.state not in FINISHED:
            seen = backend.finish_seen(queue)
            renew = mark.until if mark.due() else None
            job = backend.watch_check(queue, job_id, mark.waiter, renew)
            if job is None or job.state in FINISHED:
                break
            backend.finish_wait(queue, seen, deadline.left_s())
    finally:
        backend.watch_stop(queue, job_id, mark.waiter, keep, keep_dead)
    if job is None:
        raise not_found(queue, job_id)
    return job  # type: ignore[no-any-return]


async def wait_local_async(
    steps: Any, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
) -> Job:
    """The same over an OffLoopBackend: its steps off the loop, its sleeps on the loop."""
    deadline, mark = Deadline(queue, job_id, timeout_ms), _Mark()
    job = await steps.watch_start(queue, job_id, mark.waiter, mark.until)
    try:
        while job is not None and job.state not in FINISHED:
            seen = steps.finish_seen(queue)
            renew = mark.until if mark.due() else None
            job = await steps.watch_check(queue, job_id, mark.waiter, renew)
            if job is None or job.state in FINISHED:
                break
            await steps.finish_wait(queue, seen, deadline.left_s())
    finally:
        await steps.watch_stop(queue, job_id, mark.waiter, keep, keep_dead)
    if job is None:
        raise not_found(queue, job_id)
    return job  # type: ignore[no-any-return]
