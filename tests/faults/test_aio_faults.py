"""The asyncio client (AsyncRedis) under faults: connections dropped, servers gone silent,
malformed and unasked-for replies, and a proxy that breaks connections at random.

What must hold, as for the sync client (test_redis_faults.py, test_malformed_resp.py):
* A command is sent again after a connection error only when it was never written, or is
  safe to repeat (commands.SAFE): a write that may have run is never repeated.
* A server that stops answering fails every command waiting on it with BackendTimeout
  within the bound, and a timeout is never retried.
* Bytes that are not RESP fail every command on that connection with ProtocolError (other
  tasks' too: they fail cleanly, none gets another command's reply), the connection is
  closed, and the next command connects again and gets its own reply.
"""

from __future__ import annotations

import asyncio
import random
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jexkv.errors import BackendError, BackendTimeout, BackendUnavailable, ProtocolError
from jexkv.resp.aio_client import AsyncRedis
from jexkv.resp.client import Redis
from tests.faults.proxy import Fault, FaultProxy
from tests.faults.test_malformed_resp import (
    MALFORMED,
    MEMORY_LIMIT,
    TRUNCATED,
    _bad_first_get,
    _extra_after,
    _Streamer,
)
from tests.faults.test_redis_faults import CALL_BOUND_S, Model, _random_plan
from tests.redis_server import HOLD, SendThenClose
from tests.resp.aio_helpers import eventually, run_mixed, shared_connection, text, unretrieved

SOCKET_TIMEOUT_MS = 300
BOUND_S = 5.0  # any failing call here returns well within this
FAULT_PHASE_S = 2.0
TASKS = 12  # tasks sending through the faulty proxy at once


def _client(url: str, **options: Any) -> AsyncRedis:
    options.setdefault("retries", 0)
    options.setdefault("socket_timeout_ms", SOCKET_TIMEOUT_MS)
    options.setdefault("connect_timeout_ms", SOCKET_TIMEOUT_MS)
    return AsyncRedis.from_url(url, **options)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


async def _gather(*calls: Any) -> list[Any]:
    """The results of concurrent calls (exceptions as values), which must all end in time."""
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), BOUND_S)


@pytest.fixture
def proxy(redis_server) -> Iterator[FaultProxy]:
    with FaultProxy(redis_server.host, redis_server.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def direct(redis_server) -> Iterator[Redis]:
    """A sync client straight to the server behind the proxy, to check what ran there."""
    with Redis.from_url(redis_server.url()) as redis:
        yield redis


# -- connections dropped before and after a write -------------------------------------------


def test_a_dropped_connection_is_replaced_before_a_write(proxy, direct, unique_name):
    key = f"{unique_name}:n"

    async def main() -> None:
        async with _client(proxy.url(), retries=3) as aio:
            assert await aio.execute_command("PING") == "PONG"
            conn = shared_connection(aio)
            # Cut while idle: the client sees it, and the write goes on a new connection.
            assert proxy.cut_all() == 1
            await eventually(lambda: not conn.is_connected, what="the cut to be seen")
            assert await aio.execute_command("INCR", key) == 1
            assert proxy.accepted == 2
            # Lost while a write is queued but not written yet: it goes on a new one too.
            conn = shared_connection(aio)
            incr = asyncio.create_task(aio.execute_command("INCR", key))
            await asyncio.sleep(0)  # queued; written at the loop's next turn
            conn.connection_lost(ConnectionResetError("reset by the test"))
            assert await incr == 2
            assert proxy.accepted == 3

    asyncio.run(main())
    assert direct.execute_command("GET", key) == b"2"  # each INCR ran once


def test_a_write_lost_after_it_was_written_is_not_repeated(fake_redis):
    def answer(command: list, index: int) -> object:
        name = command[0].upper()
        if name == b"INCR":
            return None if index == 0 else b":1\r\n"  # connection 0 closes on INCR
        if name == b"GET":
            return _bulk(command[1])
        return NotImplemented

    fake = fake_redis(answer)

    async def main() -> None:
        async with _client(fake.url(), retries=3) as aio:
            calls = [("GET", "a"), ("INCR", "k"), ("GET", "b")]  # one write
            got = await _gather(*(aio.execute_command(*c) for c in calls))
            assert got[0] == b"a" and got[2] == b"b"  # the GET after it was sent again
            assert isinstance(got[1], BackendUnavailable), got
            assert await aio.execute_command("GET", "c") == b"c"

    asyncio.run(main())
    assert [c for _, c in fake.commands if c[0].upper() == b"INCR"] == [[b"INCR", b"k"]]
    assert [c[1] for c in fake.commands_of(1) if c[0].upper() == b"GET"] == [b"b", b"c"]


def test_a_silent_server_times_out_within_the_bound_and_nothing_is_resent(fake_redis):
    def answer(command: list, index: int) -> object:
        name = command[0].upper()
        if name == b"INCR" and index == 0:
            return HOLD  # connection 0 goes silent
        if name in (b"GET", b"INCR"):
            return _bulk(command[-1])
        return NotImplemented

    fake = fake_redis(answer)

    async def main() -> None:
        async with _client(fake.url(), retries=3) as aio:
            started = time.monotonic()
            got = await _gather(*(aio.execute_command(*c) for c in [("INCR", "k"), ("GET", "x")]))
            assert time.monotonic() - started < BOUND_S
            # Every command on the silent connection: the write and the read behind it.
            assert all(isinstance(result, BackendTimeout) for result in got), got
            assert await aio.execute_command("GET", "y") == b"y"

    asyncio.run(main())
    assert [c for _, c in fake.commands if c[0].upper() == b"INCR"] == [[b"INCR", b"k"]]
    assert fake.connections == 2


# -- a proxy breaking connections at random -------------------------------------------------


def test_commands_and_pipelines_through_a_faulty_proxy_never_desync(proxy, unique_name):
    proxy.plan = _random_plan(seed=15)
    model = Model()
    errors: Counter[str] = Counter()
    unexpected: list[str] = []
    slow: list[str] = []
    keys = [f"{unique_name}:{t}:{i}" for t in range(TASKS) for i in range(6)]

    async def call(what: str, make: Any) -> tuple[bool, Any]:
        started = time.monotonic()
        try:
            return True, await make()
        except BackendError as exc:
            errors[type(exc).__name__] += 1
        except Exception as exc:  # anything else breaks the promise
            unexpected.append(f"{what}: {exc!r}")
        finally:
            if time.monotonic() - started > CALL_BOUND_S:
                slow.append(f"{what} took {time.monotonic() - started:.1f} s")
        return False, None

    async def worker(aio: AsyncRedis, t: int, until: float) -> None:
        rng = random.Random(t)
        mine = keys[t * 6 : t * 6 + 6]  # each task owns its keys
        n = 0
        while time.monotonic() < until:
            n += 1
            key = rng.choice(mine)
            value = f"{key}|{n}|{uuid.uuid4().hex[:8]}"
            if n % 3 == 0:  # a pipeline: SET and GET of the key, in step or failed
                pipe = aio.pipeline(transaction=n % 2 == 0)
                pipe.execute_command("SET", key, value).execute_command("GET", key)
                ok, replies = await call(f"pipeline {key}", pipe.execute)
                if ok and replies != ["OK", value.encode()]:
                    unexpected.append(f"pipeline {key} {value}: {replies!r}")
            else:
                ok, _ = await call(f"SET {key}", lambda: aio.execute_command("SET", key, value))  # noqa: B023
            if ok:
                model.acknowledged(key, value)
            else:
                model.failed(key, value)
            probe = rng.choice(mine)
            ok, got = await call(f"GET {probe}", lambda: aio.execute_command("GET", probe))  # noqa: B023
            if ok:
                model.check(probe, None if got is None else text(got), "GET")

    async def main() -> None:
        options = {"socket_timeout_ms": 500, "connect_timeout_ms": 500}
        async with AsyncRedis.from_url(proxy.url(), **options) as aio:
            until = time.monotonic() + FAULT_PHASE_S
            await asyncio.gather(*(worker(aio, t, until) for t in range(TASKS)))
            # Faults off: the same client works again, and reads what the model allows.
            proxy.plan = Fault.none()
            proxy.cut_all()
            got = await asyncio.gather(*(aio.execute_command("GET", key) for key in keys))
            for key, value in zip(keys, got):
                model.check(key, None if value is None else text(value), "final GET")
            assert await run_mixed(aio, 100, unique_name + ":after") == []

    asyncio.run(main())
    print(f"checks={model.checked} errors={dict(errors)} faults={proxy.faults}")
    assert not unexpected, unexpected[:5]
    assert not slow, slow[:5]
    assert not model.violations, model.violations[:5]
    assert sum(proxy.faults[k] for k in ("cut", "stall", "half_close", "blackhole")) >= 5
    assert model.checked > len(keys) + 40  # the final GETs, and many more under faults


# -- malformed replies -----------------------------------------------------------------------


def _first_get_answered(reply: bytes) -> Any:
    """Connection 0 answers its first GET with ``reply``, then nothing more (a lying server
    answering every GET so would make of three truncated replies a stream that parses);
    later connections answer each GET with its key."""
    bad = _bad_first_get(reply)
    answered: list[int] = []

    def answer(command: list, index: int) -> object:
        if index == 0 and command[0].upper() == b"GET":
            if answered:
                return HOLD
            answered.append(index)
        return bad(command, index)

    return answer


def _failure_then_recovery(fake_redis: Any, reply: bytes, expected: type, **options: Any) -> None:
    """Three GETs of three tasks in one write, the first answered with ``reply``: all three
    fail with ``expected`` within the bound, the client closes the connection, and the next
    GETs go over a new one, each with its own reply."""
    fake = fake_redis(_first_get_answered(reply))

    async def main() -> None:
        async with _client(fake.url(), **options) as aio:
            started = time.monotonic()
            got = await _gather(*(aio.execute_command("GET", k) for k in ("first", "x", "y")))
            assert time.monotonic() - started < BOUND_S
            assert all(isinstance(result, expected) for result in got), got
            assert aio._conn is not None and not aio._conn.is_connected
            got = await _gather(*(aio.execute_command("GET", k) for k in ("second", "third")))
            assert got == [b"second", b"third"]

    asyncio.run(main())
    assert fake.connections == 2
    assert [c[1] for c in fake.commands_of(1) if c[0].upper() == b"GET"] == [b"second", b"third"]


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_reply_is_a_protocol_error_and_the_client_recovers(fake_redis, reply):
    _failure_then_recovery(fake_redis, reply, ProtocolError, retries=3)


@pytest.mark.parametrize("reply", list(TRUNCATED.values()), ids=list(TRUNCATED))
def test_truncated_reply_then_close_is_unavailable(fake_redis, reply):
    _failure_then_recovery(fake_redis, SendThenClose(reply), BackendUnavailable)


@pytest.mark.parametrize(
    "reply",
    [*TRUNCATED.values(), b"$10\r\nhello\r\n"],
    ids=[*TRUNCATED, "bulk longer than its data"],
)
def test_truncated_reply_then_silence_times_out(fake_redis, reply):
    _failure_then_recovery(fake_redis, reply, BackendTimeout, retries=3)


def test_a_truncated_read_is_sent_again_on_a_new_connection(fake_redis):
    fake = fake_redis(_bad_first_get(SendThenClose(b"$10\r\nhel")))

    async def main() -> None:
        async with _client(fake.url(), retries=3) as aio:
            assert await aio.execute_command("GET", "first") == b"first"  # GET is safe

    asyncio.run(main())
    assert fake.connections == 2


def test_malformed_handshake_and_pipeline_replies(fake_redis, caplog):
    def answer(command: list, index: int) -> object:
        name = command[0].upper()
        if name == b"HELLO" and index == 0:
            return b"%3\r\n+server\r\n@@@\r\n"
        if name == b"GET":
            bad = index == 1 and command[1] == b"b"
            return b"$-7\r\n" if bad else _bulk(command[1])
        return NotImplemented

    fake = fake_redis(answer)

    async def main() -> None:
        async with _client(fake.url()) as aio:
            with pytest.raises(ProtocolError):  # the handshake of connection 0
                await aio.execute_command("GET", "first")
            pipe = aio.pipeline()
            for key in ("a", "b", "c"):
                pipe.execute_command("GET", key)
            with pytest.raises(ProtocolError):  # connection 1
                await pipe.execute()
            await eventually(lambda: {0, 1} <= fake.closed_by_client, what="the drops")
            for key in ("d", "b", "e"):
                pipe.execute_command("GET", key)
            assert await pipe.execute() == [b"d", b"b", b"e"]  # connection 2

    asyncio.run(main())
    assert fake.connections == 3
    assert unretrieved(caplog) == []  # the pipeline's three errors: all seen


def test_a_reply_nobody_asked_for_drops_the_connection(fake_redis):
    fake = fake_redis(_extra_after(b"first", _bulk(b"evil")))

    async def main() -> None:
        async with _client(fake.url()) as aio:
            # In the same packet as the reply it follows.
            assert await aio.execute_command("GET", "first") == b"first"
            assert await aio.execute_command("GET", "second") == b"second"
            # In a packet of its own, on a connection with no command waiting.
            conn = shared_connection(aio)
            fake._socks[1].sendall(_bulk(b"evil"))
            await eventually(lambda: not conn.is_connected, what="the extra reply to be seen")
            assert await aio.execute_command("GET", "third") == b"third"

    asyncio.run(main())
    assert fake.connections == 3
    assert [c[1] for c in fake.commands_of(2) if c[0].upper() == b"GET"] == [b"third"]


@pytest.mark.parametrize(
    "prefix",
    [b"+", b"$999999999999\r\n", b"*99999999999\r\n", b"$" + b"9" * 100],
    ids=["endless-line", "huge-bulk", "huge-array", "endless-length"],
)
def test_memory_stays_bounded_while_the_server_streams(prefix):
    server = _Streamer(prefix, b"a" * 65536, 64 << 20)

    async def main() -> None:
        async with _client(server.url(), socket_timeout_ms=2000) as aio:
            assert await aio.execute_command("PING") == "OK"
            tracemalloc.start()
            try:
                with pytest.raises(ProtocolError):
                    await asyncio.wait_for(aio.execute_command("GET", "first"), BOUND_S)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
            assert await aio.execute_command("GET", "second") == b"second"

    try:
        asyncio.run(main())
        assert server.streamed < server.limit, "the client read all the server sent"
    finally:
        server.close()
