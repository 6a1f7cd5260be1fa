"""The Redis adapters' operations as programs, and the two drivers that carry them out.

Rule: an operation of kv_ops.py or queue_ops.py is a generator that does no I/O. It yields
what to send (a command as a tuple of its arguments; ``(SCRIPT, name, keys, args)``;
``(TRANSACTION, commands)``) and gets back the reply, or has the error thrown in where it
yielded, and decides. :func:`run` carries a program out over the sync client,
:func:`run_async` over the asyncio one (through jexkv/programs.py's drivers): the
adapters' rules are written once, and only the I/O differs (docs/engine.md).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, TypeVar

from jexkv.programs import drive, drive_async
from jexkv.resp.surface import AsyncRedisClient, RedisClient

__all__ = ["SCRIPT", "TRANSACTION", "Program", "T", "run", "run_async"]

SCRIPT = "@script"
TRANSACTION = "@transaction"

T = TypeVar("T")
Program = Generator[tuple[Any, ...], Any, T]  # an operation that gives a T


def run(program: Program[T], client: RedisClient, scripts: Mapping[str, Any]) -> T:
    """Carry out an operation over the sync ``client`` (``scripts``: its scripts by name)."""

    def do(step: tuple[Any, ...]) -> Any:
        if step[0] == SCRIPT:
            return scripts[step[1]](step[2], step[3])
        if step[0] == TRANSACTION:
            pipe = client.pipeline(transaction=True)
            for command in step[1]:
                pipe.execute_command(*command)
            return pipe.execute()
        return client.execute_command(*step)

    return drive(program, do)


async def run_async(program: Program[T], client: AsyncRedisClient, scripts: Mapping[str, Any]) -> T:
    """The same over the asyncio ``client``."""

    async def do(step: tuple[Any, ...]) -> Any:
        if step[0] == SCRIPT:
            return await scripts[step[1]](step[2], step[3])
        if step[0] == TRANSACTION:
            pipe = client.pipeline(transaction=True)
            for command in step[1]:
                pipe.execute_command(*command)
            return await pipe.execute()
        return await client.execute_command(*step)

    return await drive_async(program, do)
