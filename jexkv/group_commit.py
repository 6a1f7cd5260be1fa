"""GroupCommit: the COMPLETE steps of a queue's slots on one event loop, sent together.

Rule: a slot that finished jobs yields one COMPLETE step (its results, and how many jobs to
claim next). When many slots finish at once (fifty coroutines that awaited the same kind of
I/O), the steps that arrive while one is on its way to the backend wait for it and then go
as one backend call: every result recorded, as many jobs claimed as they asked for in all,
and the claims and lost ids handed back to each slot as if it had called alone (its own
lost ids; its share of the claims, in arrival order). A backend error fails every step of
that call, and each slot's program decides, as it would alone. Fifty slots finishing
together cost a few calls, not fifty queued one behind another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Callable

from jexkv.contracts import Claim

__all__ = ["GroupCommit"]

_Request = tuple[Sequence[tuple[str, str, str]], int, int, "asyncio.Future[Any]"]


class GroupCommit:
    """The COMPLETE steps of one queue; ``complete`` is the backend's coroutine."""

    def __init__(
        self, queue: str, complete: Callable[..., Any], release: Callable[..., Any]
    ) -> None:
        self._queue = queue
        self._complete = complete
        self._release = release
        self._waiting: list[_Request] = []
        self._sending: asyncio.Future[None] | None = None  # held: the loop keeps weak refs

    async def complete(
        self, acks: Sequence[tuple[str, str, str]], keep: int, lease_ms: int, claim_next: int
    ) -> tuple[list[str], list[Claim]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((acks, lease_ms, claim_next, future))
        if self._sending is None:
            self._sending = asyncio.ensure_future(self._send(keep))
        return await future  # type: ignore[no-any-return]

    async def _send(self, keep: int) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._one_call(batch, keep)
                except BaseException as exc:  # every step of the call fails, none hangs
                    for *_, future in batch:
                        if future.done():
                            continue
                        if isinstance(exc, asyncio.CancelledError):
                            future.cancel()
                        else:
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._sending = None
            left, self._waiting = self._waiting, []
            for *_, future in left:  # this sender was cancelled (the loop is ending)
                future.cancel()

    async def _one_call(self, batch: list[_Request], keep: int) -> None:
        acks = [ack for request in batch for ack in request[0]]
        lease_ms = max(request[1] for request in batch)
        claim_next = sum(request[2] for request in batch)
        lost, claims = await self._complete(self._queue, acks, keep, lease_ms, claim_next)
        lost_set = set(lost)
        start = 0
        orphans: list[tuple[str, str]] = []
        for mine, _, wanted, future in batch:
            share = claims[start : start + wanted]
            start += wanted
            if future.done():  # its slot was cancelled meanwhile (the worker is closing)
                orphans += [(job.id, token) for job, token in share]
                continue
            gone = [job_id for job_id, _, _ in mine if job_id in lost_set]
            future.set_result((gone, share))
        if orphans:  # claimed for nobody: handed back now (else their leases run out)
            try:
                await self._release(self._queue, orphans)
            except Exception:
                pass  # their leases run out, and the stalled check hands them out again
