"""The asyncio contract (docs/contract.md, "asyncio"): the sync contract's methods as
coroutines, with the same names, arguments, values, errors and semantics.

Rule: this module holds no behaviour; each method means what the same method of
``jexkv.KVStore`` / ``jexkv.TaskQueue`` means (jexkv/contracts.py). The differences are
the ones the async API needs: ``keys()`` is an async iterator; ``register_worker`` is a
plain method called while an event loop runs; ``close`` is ``aclose``; both objects are
async context managers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from jexkv.jobs import Backoff, Job
from jexkv.schedules import Schedule

__all__ = ["AsyncKVStore", "AsyncTaskQueue"]


@runtime_checkable
class AsyncKVStore(Protocol):
    """A key-value store whose keys may expire, for asyncio code (see ``jexkv.KVStore``)."""

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_ms: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool: ...

    async def delete(self, *keys: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def ttl_ms(self, key: str) -> int: ...

    async def expire(self, key: str, ttl_ms: int) -> bool: ...

    async def persist(self, key: str) -> bool: ...

    async def incr(self, key: str, amount: int = 1, *, ttl_ms: int | None = None) -> int: ...

    async def pop(self, key: str, default: Any = None) -> Any: ...

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]: ...

    async def set_many(self, mapping: Mapping[str, Any], *, ttl_ms: int | None = None) -> None: ...

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Live keys starting with ``prefix``, fetched lazily: ``async for key in kv.keys()``."""

    async def clear(self) -> int: ...

    async def aclose(self) -> None:
        """Release the store (connections, threads); safe to call twice."""

    async def __aenter__(self) -> AsyncKVStore: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class AsyncTaskQueue(Protocol):
    """Background jobs for asyncio code (see ``jexkv.TaskQueue``)."""

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
    ) -> Job: ...

    async def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]: ...

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
        """Run ``handler`` on the jobs of ``queue``, up to ``concurrency`` at once, on the
        running event loop: an ``async def`` handler as tasks, a plain one in threads.
        Called while a loop runs (ConfigError otherwise)."""

    async def get_job(self, queue: str, job_id: str) -> Job | None: ...

    async def wait_for(self, queue: str, job_id: str, *, timeout_ms: int | None = None) -> Job: ...

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
    ) -> Schedule: ...

    async def schedules(self, queue: str) -> list[Schedule]: ...

    async def unschedule(self, queue: str, schedule_id: str) -> bool: ...

    async def counts(self, queue: str) -> dict[str, int]: ...

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[Job]: ...

    async def jobs(self, queue: str, state: str = "waiting", *, limit: int = 100) -> list[Job]: ...

    async def retry_dead(self, queue: str, job_id: str | None = None) -> int: ...

    async def purge_dead(self, queue: str) -> int: ...

    async def pause(self, queue: str) -> None: ...

    async def resume(self, queue: str) -> None: ...

    async def is_paused(self, queue: str) -> bool: ...

    async def aclose(self, timeout_ms: int | None = None) -> None:
        """Stop fetching, let running handlers finish up to ``timeout_ms``, then cancel the
        rest (their jobs are handed back, or left to their leases: never lost)."""

    async def __aenter__(self) -> AsyncTaskQueue: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
