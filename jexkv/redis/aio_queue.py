"""AsyncRedisQueueBackend: the queue steps of queue_ops.py over the asyncio client, with the
markers watched by tasks (redis/markers.py): the same steps, scripts and layout as
RedisQueueBackend, and no thread."""

from __future__ import annotations

from collections.abc import Sequence

from jexkv.clock import now_ms
from jexkv.contracts import Claim
from jexkv.jobs import Job, NewJob
from jexkv.redis.markers import AsyncMarkerWatch
from jexkv.redis.programs import Program, T, run_async
from jexkv.redis.queue_ops import QueueOps
from jexkv.redis.scripts import build_all
from jexkv.resp.surface import AsyncRedisClient
from jexkv.schedules import Schedule, ScheduleSpec

__all__ = ["AsyncRedisQueueBackend"]


class AsyncRedisQueueBackend:
    """The async steps of a Redis queue store (one prefix and namespace on one server)."""

    def __init__(
        self,
        client: AsyncRedisClient,
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
        self._scripts = {name: client.register_script(text) for name, text in build_all().items()}
        self._wakeups = self._ops.wakeups
        self._markers: AsyncMarkerWatch | None = None  # made on the loop, at the first wait

    async def _run(self, step: Program[T]) -> T:
        return await run_async(step, self._client, self._scripts)

    async def add(self, queue: str, jobs: Sequence[NewJob]) -> list[Job]:
        return await self._run(self._ops.add(queue, jobs))

    async def fetch(self, queue: str, lease_ms: int, limit: int) -> list[Claim]:
        return await self._run(self._ops.fetch(queue, lease_ms, limit))

    def seen(self, queue: str) -> int:
        return self._wakeups.seen(queue)

    async def wait(self, queue: str, seen: int, timeout_s: float) -> None:
        if self._markers is None:
            self._markers = AsyncMarkerWatch(self._client, self._wakeups)
        self._markers.watch(queue, *self._ops.marker(queue))
        await self._wakeups.wait_async(queue, seen, timeout_s, now_ms())

    def notify(self, queue: str) -> None:
        self._wakeups.bump(queue)

    async def complete(
        self,
        queue: str,
        done: Sequence[tuple[str, str, str]],
        keep: int,
        next_lease_ms: int,
        next_limit: int,
    ) -> tuple[list[str], list[Claim]]:
        return await self._run(self._ops.complete(queue, done, keep, next_lease_ms, next_limit))

    async def release(self, queue: str, held: Sequence[tuple[str, str]]) -> None:
        await self._run(self._ops.release(queue, held))

    async def fail(
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
        return await self._run(step)

    async def extend(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        return await self._run(self._ops.extend(queue, held, lease_ms))

    async def recover_stalled(
        self, queue: str, max_stalls: int, interval_ms: int, keep_dead: int | None
    ) -> int:
        return await self._run(self._ops.recover_stalled(queue, max_stalls, interval_ms, keep_dead))

    async def wait_for(
        self, queue: str, job_id: str, timeout_ms: int | None, keep: int, keep_dead: int | None
    ) -> Job:
        return await self._run(self._ops.wait_for(queue, job_id, timeout_ms))

    async def schedule(self, queue: str, spec: ScheduleSpec) -> Schedule:
        return await self._run(self._ops.schedule(queue, spec))

    async def schedules(self, queue: str) -> list[Schedule]:
        return await self._run(self._ops.schedules(queue))

    async def unschedule(self, queue: str, schedule_id: str) -> bool:
        return await self._run(self._ops.unschedule(queue, schedule_id))

    async def get(self, queue: str, job_id: str) -> Job | None:
        return await self._run(self._ops.get(queue, job_id))

    async def counts(self, queue: str) -> dict[str, int]:
        return await self._run(self._ops.counts(queue))

    async def list_jobs(self, queue: str, state: str, limit: int) -> list[Job]:
        return await self._run(self._ops.list_jobs(queue, state, limit))

    async def retry_dead(self, queue: str, job_id: str | None) -> int:
        return await self._run(self._ops.retry_dead(queue, job_id))

    async def purge_dead(self, queue: str) -> int:
        return await self._run(self._ops.purge_dead(queue))

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._run(self._ops.set_paused(queue, paused))

    async def is_paused(self, queue: str) -> bool:
        return await self._run(self._ops.is_paused(queue))

    async def ready(self) -> None:
        """Nothing to open: the client connects on its first command."""

    async def aclose(self) -> None:
        if self._markers is not None:
            await self._markers.aclose()
        await self._client.aclose()
