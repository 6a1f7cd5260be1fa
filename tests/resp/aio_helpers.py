"""What the tests of the asyncio Redis client share (tests/resp/test_aio_client.py,
tests/faults/test_aio_faults.py, tests/cluster/test_aio_cluster.py).

* ``aio_client(url, protocol=3, **options)``: an ``AsyncRedis`` speaking RESP3 or RESP2.
* ``eventually(predicate)``: poll, from a coroutine, until something holds.
* ``count_writes(client)``: count the writes of a client's shared connection.
* ``unretrieved(caplog)``: errors asyncio says no one retrieved.
* ``run_mixed(client, tasks, prefix)``: many concurrent tasks, each sending its own mix of
  commands with values no other task uses, and checking that every reply is its own.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from typing import Any, Callable

from jexkv.resp.aio_client import AsyncRedis
from jexkv.resp.aio_connection import AsyncConnection

# A script every mixed task may call: its key and its argument, back (EVALSHA).
ECHO_SCRIPT = "return {KEYS[1], ARGV[1]}"


def text(value: Any) -> str:
    """A reply (bytes, str, a number) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def aio_client(url: str, protocol: int = 3, **options: Any) -> AsyncRedis:
    """``AsyncRedis.from_url(url, **options)`` speaking ``protocol`` (3: HELLO 3; 2: RESP2,
    no HELLO: the handshake of a server older than 6)."""
    client = AsyncRedis.from_url(url, **options)
    client._settings["protocol"] = protocol
    return client


async def eventually(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Wait (letting the loop run) until ``predicate()`` is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def unretrieved(caplog: Any) -> list[str]:
    """asyncio's complaints, once the objects are collected, of errors no one retrieved (of
    a future or a task): each is an error that no caller saw."""
    gc.collect()
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


def shared_connection(client: AsyncRedis) -> AsyncConnection:
    """The client's shared (auto-pipelined) connection, which must be open."""
    conn = client._conn
    assert conn is not None and conn.is_connected, "the shared connection is not open"
    return conn


class CountingTransport:
    """A transport that counts the ``write`` calls made on it, passing everything on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def count_writes(client: AsyncRedis) -> CountingTransport:
    """Count the writes of ``client``'s shared connection from now on (open it first)."""
    conn = shared_connection(client)
    counter = CountingTransport(conn._transport)
    conn._transport = counter  # type: ignore[assignment]
    return counter


async def _mixed_task(client: Any, script: Any, prefix: str, i: int) -> list[str]:
    """Task ``i``'s commands, of kind ``i % 8``, on a key and a value of its own; what went
    wrong (a reply that is not this task's own), as text."""
    key, value = f"{prefix}:{i}", f"{prefix}-value-{i}-{uuid.uuid4().hex[:8]}"
    kind = i % 8
    call = client.execute_command
    if kind == 0:
        got = [await call("SET", key, value), await call("GET", key)]
        want: list[Any] = ["OK", value.encode()]
    elif kind == 1:
        got = [await call("INCRBY", key, i), await call("INCR", key)]
        want = [i, i + 1]
    elif kind == 2:
        got = [await call("LPUSH", key, value, i), await call("LRANGE", key, 0, -1)]
        want = [2, [str(i).encode(), value.encode()]]
    elif kind == 3:
        got = [await call("HSET", key, "f", value), await call("HGET", key, "f")]
        want = [1, value.encode()]
    elif kind == 4:
        got = [await script(keys=[key], args=[value])]
        want = [[key.encode(), value.encode()]]
    elif kind == 5:
        got = [await call("PING", value)]
        want = [value.encode()]
    elif kind == 6:
        got = [await call("ECHO", value)]
        want = [value.encode()]
    else:
        got = [await call("SET", key, value, "GET"), await call("GETDEL", key)]
        want = [None, value.encode()]
    if got != want:
        return [f"task {i}: got {got!r}, wanted {want!r}"]
    return []


async def run_mixed(client: Any, tasks: int, prefix: str) -> list[str]:
    """``tasks`` concurrent tasks of mixed commands (SET/GET, INCRBY/INCR, LPUSH/LRANGE,
    HSET/HGET, EVALSHA, PING, ECHO, SET GET/GETDEL), each on its own key with its own value;
    the replies that were not their own task's (none, when the client keeps them in step)."""
    script = client.register_script(ECHO_SCRIPT)
    results = await asyncio.gather(*(_mixed_task(client, script, prefix, i) for i in range(tasks)))
    return [problem for problems in results for problem in problems]
