"""Programs and their drivers: how jexkv writes a rule once for threads and asyncio alike.

Rule: a program is a generator that does no I/O. It yields *steps* (what to do: send a
command, run a handler, wait) and gets back each step's result, or has the step's exception
thrown in where it yielded, and decides what follows. A driver carries the steps out:
:func:`drive` in the calling thread, :func:`drive_async` in a task. The worker engine
(engine.py), the Redis adapters' operations (redis/kv_ops.py, redis/queue_ops.py) and the
Redis marker watchers (redis/markers.py) are programs; docs/engine.md tells the design.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, Callable, TypeVar

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def drive(program: Generator[Any, Any, T], do: Callable[[Any], Any]) -> T:
    """Carry out ``program``: each step it yields goes to ``do``, whose result is sent back
    (or whose exception is thrown in, for the program to decide); its return value."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = program.send(value) if error is None else program.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = do(step)
        except BaseException as exc:  # thrown into the program, which decides
            error = exc


async def drive_async(program: Generator[Any, Any, T], do: Callable[[Any], Awaitable[Any]]) -> T:
    """The same, awaiting ``do``; a cancellation is thrown in too (the program's ``finally``
    runs) and goes on up."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = program.send(value) if error is None else program.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = await do(step)
        except BaseException as exc:  # thrown into the program, which decides
            error = exc
