"""The public contract every adapter keeps, as typing Protocols.

Rule: this module holds no behaviour. Each method's docstring is the contract
(docs/contract.md; README: "The KV API", "The task queue"); the memory adapter is the
reference implementation and the contract test suite runs every adapter
against the same cases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from jexkv.jobs import Backoff, Job, NewJob
from jexkv.schedules import Schedule, ScheduleSpec

__all__ = ["Claim", "KVStore", "QueueBackend", "TaskQueue"]


@runtime_checkable
class KVStore(Protocol):
    """A key-value store whose keys may expire.

    Keys are non-empty ``str``; values are anything JSON can carry and come back
    as JSON decodes them. Times are int milliseconds. A key past its TTL is never
    returned, counted or listed, even before the background purge removes it.
    Every method is safe to call from many threads at once; every method raises
    :class:`jexkv.ClosedError` after :meth:`close`.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """The live value of ``key``, or ``default`` if it is missing or expired."""

    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Write ``value``; True when written.

        ``nx``: only if the key is absent; ``xx``: only if it is present (not both).
        Without ``ttl_ms`` any earlier TTL of the key is removed.
        """

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; how many of them were live."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is live."""

    def ttl_ms(self, key: str) -> int:
        """Remaining ms; -1 if the key has no expiry; -2 if it is missing."""

    def expire(self, key: str, ttl_ms: int) -> bool:
        """Set a TTL on a live key; False if the key is missing."""

    def persist(self, key: str) -> bool:
        """Drop the TTL of a live key; True if it had one."""

    def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int:
        """Atomically add ``amount``; a missing key starts at 0.

        ``ttl_ms`` applies only when this call creates the key (a fixed window).
        A value that is not an int raises :class:`jexkv.WrongTypeError`.
        """

    def pop(self, key: str, default: Any = None) -> Any:
        """Atomically get and delete: of two concurrent pops exactly one gets the value."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys``, with their values."""

    def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None:
        """Write every item, atomically where the backend allows; nothing if any is invalid."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Live keys starting with ``prefix``, in no set order, fetched lazily."""

    def clear(self) -> int:
        """Remove every key of this store (its namespace only); how many were live."""

    def close(self) -> None:
        """Stop background threads and release resources; safe to call twice."""

    def __enter__(self) -> KVStore: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class TaskQueue(Protocol):
    """Background jobs: ``enqueue`` returns at once, registered workers run them.

    A handler that raises fails that attempt; the job is retried after its backoff
    while attempts remain, then kept in the dead-letter state with its error.
    Every method is safe from many threads and raises ClosedError after close().
    """

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
        """Add a job; with a ``job_id`` that is already kept, add nothing and return that job."""

    def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Add many jobs (dicts of enqueue's arguments), all or none; the jobs in order."""

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
        """Start ``concurrency`` threads running ``handler`` on the jobs of ``queue``."""

    def get_job(self, queue: str, job_id: str) -> Job | None:
        """The job, if it is still kept."""

    def wait_for(self, queue: str, job_id: str, *, timeout_ms: int | None = None) -> Job:
        """The job once it has finished (``completed`` with its result, ``dead`` with its
        error), even when finished jobs are not kept; WaitTimeout if ``timeout_ms`` passes
        first, JobNotFound for an id no job on the queue has."""

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
        """Make ``queue`` get a job ``name`` (with ``payload`` and the job options) at each
        tick of ``cron`` (in ``tz``) or every ``every_ms``; again with the same
        ``schedule_id`` replaces it. Exactly one job per tick, however many workers."""

    def schedules(self, queue: str) -> list[Schedule]:
        """The queue's schedules, by id."""

    def unschedule(self, queue: str, schedule_id: str) -> bool:
        """Remove a schedule (and its job for the next tick, unless it has started); True
        if it existed."""

    def counts(self, queue: str) -> dict[str, int]:
        """Jobs per state: waiting, delayed, active, completed, dead."""

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[Job]:
        """Dead jobs, newest first, with ``error`` set."""

    def jobs(self, queue: str, state: str = "waiting", *, limit: int = 100) -> list[Job]:
        """Jobs in one state: waiting and delayed in the order they will run, active by
        start time, completed and dead newest first."""

    def retry_dead(self, queue: str, job_id: str | None = None) -> int:
        """Move one (or every) dead job back to waiting with a fresh attempt budget."""

    def purge_dead(self, queue: str) -> int:
        """Delete the dead jobs; how many."""

    def pause(self, queue: str) -> None:
        """Stop every worker (in every process) from fetching jobs of ``queue``; jobs that
        run already finish. Enqueueing goes on."""

    def resume(self, queue: str) -> None:
        """Let workers fetch jobs of a paused ``queue`` again."""

    def is_paused(self, queue: str) -> bool:
        """Whether ``queue`` is paused."""

    def close(self, timeout_ms: int | None = None) -> None:
        """Stop fetching, wait for running handlers (up to the timeout), release resources."""

    def __enter__(self) -> TaskQueue: ...

    def __exit__(self, *exc_info: object) -> None: ...


# A fetched job and the lease token that proves this worker holds it: (job, token).
# A plain tuple, not a NamedTuple: one is made for every job handed out.
Claim = tuple[Job, str]


class QueueBackend(Protocol):
    """The atomic steps a queue adapter implements; worker.py does the rest.

    ``queue`` is the caller's queue name; the backend applies its namespace.
    Every step that changes a job is atomic, also across processes where the
    backend is shared; steps that take a ``token`` do nothing (and return
    False) when the job is no longer held with that token (the lease was lost).
    """

    def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
        """Add all jobs at once; a job_id that is kept already returns that job."""

    def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` ready jobs (after promoting due delayed ones)."""

    def seen(self, queue: str) -> int:
        """The queue's wake-up generation: read before looking for work, given to wait()."""

    def wait(self, queue: str, seen: int, timeout_s: float, stop: threading.Event) -> None:
        """Return when work may have come since the generation ``seen``, the queue's next
        delayed job is due, ``stop`` is set, or ``timeout_s`` passed."""

    def notify(self, queue: str) -> None:
        """Wake every thread in ``wait`` on ``queue`` (used on close)."""

    def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        """Finish held jobs, given as (job_id, token, result as JSON text), in one step,
        keeping the newest ``keep`` completed; then claim up to ``next_limit`` ready
        jobs (with ``next_lease_ms``) in the same step. Returns (the ids that were no
        longer held, the claims made)."""

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        """Hand claimed jobs that were never started back to waiting, no attempt counted."""

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
        """Fail an attempt: retry ``retry_delay_ms`` from now (by the backend's own clock),
        or (None) move to dead."""

    def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        """Renew the leases of (job_id, token) pairs; the ids whose lease was lost."""

    def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        """Requeue (or kill) active jobs whose lease ran out; at most once per interval."""

    def get(self, queue: str, job_id: str) -> Job | None: ...

    def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        """The job once it has finished (jexkv/waiting.py); ``keep``/``keep_dead``: the
        caller's keep rules, applied again to a job its wait kept."""

    def schedule(self, queue: str, spec: ScheduleSpec) -> Schedule:
        """Store (or replace) a schedule and add its first tick's job, at once; a replaced
        schedule's job for its next tick is removed unless it has started."""

    def schedules(self, queue: str) -> list[Schedule]: ...

    def unschedule(self, queue: str, schedule_id: str) -> bool: ...

    def counts(self, queue: str) -> dict[str, int]: ...

    def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        """Jobs in ``state`` (one of jobs.STATES), in TaskQueue.jobs's order."""

    def retry_dead(self, queue: str, job_id: str | None) -> int: ...

    def purge_dead(self, queue: str) -> int: ...

    def set_paused(self, queue: str, paused: bool) -> None:
        """Pause (or resume) fetching from ``queue``, for every process on the backend."""

    def is_paused(self, queue: str) -> bool: ...

    def close(self) -> None: ...
