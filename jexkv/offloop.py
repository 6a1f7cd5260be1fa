"""OffLoop: a sync object (a SQLite store, a memory store) used from asyncio code.

Rules:
* Threaded (SQLite): the object is built on first use, in a thread (opening the file may
  wait on another process's lock), and each call runs in a thread of a small pool of its
  own; the event loop only awaits. A failed build is raised to the callers that waited for
  it, and the next call tries again.
* Inline (memory, where nothing waits on I/O): built on first use and called right in the
  loop, with no thread hop.
* ``close`` runs the object's own close off the loop once the calls in flight have ended;
  the pool's threads then exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Callable, Generic, TypeVar

__all__ = ["OffLoop", "THREADS"]

T = TypeVar("T")
R = TypeVar("R")

THREADS = 4  # per store: a write waiting on another process's lock leaves three for reads


class OffLoop(Generic[T]):
    def __init__(
        self,
        build: Callable[[], T],
        *,
        threads: int = THREADS,
        executor: concurrent.futures.Executor | None = None,
        name: str = "jexkv-offloop",
    ) -> None:
        """``threads=0``: inline. ``executor``: run in that pool (its owner shuts it down)."""
        self._build = build
        self.obj: T | None = None
        self._opening: asyncio.Future[T] | None = None
        self._owns_executor = executor is None and threads > 0
        self._executor = executor
        if self._owns_executor:
            self._executor = concurrent.futures.ThreadPoolExecutor(threads, name)

    @classmethod
    def of(cls, obj: T, executor: concurrent.futures.Executor | None = None) -> OffLoop[T]:
        """An object built already, called in the threads of ``executor`` (None: inline)."""
        off = cls(lambda: obj, executor=executor, threads=0)
        off.obj = obj
        return off

    @property
    def inline(self) -> bool:
        return self._executor is None

    async def get(self) -> T:
        """The object, built on the first call (once, whatever the number of callers)."""
        obj = self.obj
        if obj is not None:
            return obj
        if self._executor is None:
            obj = self.obj = self._build()
            return obj
        opening = self._opening
        if opening is None:
            loop = asyncio.get_running_loop()
            opening = self._opening = asyncio.ensure_future(
                loop.run_in_executor(self._executor, self._build)
            )
            opening.add_done_callback(self._built)
        return await asyncio.shield(opening)

    def _built(self, opening: asyncio.Future[T]) -> None:
        if opening.cancelled() or opening.exception() is not None:
            self._opening = None  # the next call tries again
        else:
            self.obj = opening.result()

    async def call(self, fn: Callable[[T], R]) -> R:
        """``fn(obj)``, in a thread of the pool (or right here, inline)."""
        obj = self.obj
        if obj is None:
            obj = await self.get()
        if self._executor is None:
            return fn(obj)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, obj)

    async def method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``obj.name(*args, **kwargs)``, as :meth:`call` runs it."""
        return await self.call(lambda obj: getattr(obj, name)(*args, **kwargs))

    async def close(self, close: Callable[[T], None]) -> None:
        """``close(obj)`` if it was built (after a build still running), off the loop; then
        the pool's threads end."""
        if self._opening is not None and self.obj is None:
            try:
                await asyncio.shield(self._opening)
            except Exception:
                pass  # it never opened: nothing to close
        obj = self.obj
        try:
            if obj is not None:
                if self._executor is None:
                    close(obj)
                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._executor, close, obj)
        finally:
            if self._owns_executor and self._executor is not None:
                self._executor.shutdown(wait=False)


def bound(off: OffLoop[Any], name: str) -> Callable[..., Any]:
    """An async function that runs ``obj.name(...)`` through ``off``."""
    return functools.partial(off.method, name)
