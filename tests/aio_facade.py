"""The asyncio API seen through the sync contract, so that one contract suite drives both.

``LoopThread`` runs an event loop in a background thread; ``SyncFacade(obj, loop)`` gives
an ``AsyncKVStore`` / ``AsyncTaskQueue`` the sync methods: each coroutine method runs on that
loop and the test thread waits for its result (or its exception, raised as it is).
``keys()`` pulls the async iterator one key at a time (still lazy); ``register_worker`` runs
on the loop (it must be called while the loop runs); ``close(timeout_ms)`` is ``aclose``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Iterator
from typing import Any, Callable, TypeVar

T = TypeVar("T")

# No contract call takes this long; past it the test fails instead of hanging the run.
CALL_TIMEOUT_S = 120.0


class LoopThread:
    """An event loop running in a thread of its own until ``stop()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()`` on the loop; its result here."""

        async def call() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return future.result(CALL_TIMEOUT_S)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` called on the loop (inside it, as code that runs on a loop is)."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(CALL_TIMEOUT_S)

    def stop(self) -> None:
        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.run(cancel_rest)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT_S)
        self.loop.close()


class SyncFacade:
    """The sync contract over an object of the asyncio contract (see the module doc)."""

    def __init__(self, obj: Any, loop: LoopThread) -> None:
        self._obj = obj
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        loop = self._loop

        def method(*args: Any, **kwargs: Any) -> Any:
            return loop.run(lambda: attr(*args, **kwargs))

        method.__name__ = name
        return method

    def keys(self, prefix: str = "") -> Iterator[str]:
        pages = self._obj.keys(prefix)  # a bad prefix raises here, as in the sync API
        return self._pull(pages)

    def _pull(self, pages: Any) -> Iterator[str]:
        while True:
            try:
                yield self._loop.run(pages.__anext__)
            except StopAsyncIteration:
                return

    def register_worker(self, queue: str, handler: Callable[..., Any], **options: Any) -> None:
        self._loop.call(lambda: self._obj.register_worker(queue, handler, **options))

    def close(self, timeout_ms: int | None = None) -> None:
        if hasattr(self._obj, "dead_letters"):  # a task queue: aclose takes the timeout
            self._loop.run(lambda: self._obj.aclose(timeout_ms))
        else:
            self._loop.run(self._obj.aclose)

    def __enter__(self) -> SyncFacade:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncFacade {self._obj!r}>"
