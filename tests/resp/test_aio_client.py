"""The asyncio client (jexkv.resp.aio_client.AsyncRedis) against real redis-server processes.

Every reply kind of RESP3 and RESP2 end to end, errors as ServerError subclasses, the
handshake (passwords, ACL users, databases, names, unix sockets, TLS), pipelines and
transactions, scripts after SCRIPT FLUSH, blocking commands and the AsyncBlocker on
connections of their own, cancelled tasks, auto-pipelining under a thousand concurrent
tasks, a client used from two event loops in turn, and aclose. Pub/sub is not offered by
the asyncio client, so it is not tested here. Each test runs its coroutine with
``asyncio.run``; the sync client (the ``client`` fixture, every database flushed first)
sets up and checks what the server holds.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

import jexkv
from jexkv.errors import BackendError, BackendUnavailable, ConfigError
from jexkv.resp.aio_client import AsyncRedis
from jexkv.resp.errors import NoScriptError, ServerError, WatchError, WrongTypeError
from jexkv.resp.protocol import ErrorReply, VerbatimString
from tests.helpers import wait_for
from tests.resp.aio_helpers import (
    aio_client,
    count_writes,
    eventually,
    run_mixed,
    shared_connection,
    text,
    unretrieved,
)
from tests.resp.conftest import ACL_PASSWORD, ACL_USER, AUTH_PASSWORD

BIG = 1234567890123456789012345678901234567890
BINARY = bytes(range(256)) + b"\r\n$-1\r\n*1\r\n"


def lua3(body: str) -> str:
    """A script returning ``body`` as a RESP3 type (Redis converts it for a RESP2 client)."""
    return f"redis.setresp(3); return {body}"


# (name, command, the RESP3 reply, the RESP2 reply); compared with their types.
REPLY_KINDS = [
    ("simple string", ("PING",), "PONG", "PONG"),
    ("bulk string", ("GET", "rk:bin"), BINARY, BINARY),
    ("nil", ("GET", "rk:missing"), None, None),
    ("integer", ("INCRBY", "rk:n", 41), 41, 41),
    ("array", ("LRANGE", "rk:list", 0, -1), [b"a", b"b"], [b"a", b"b"]),
    ("empty array", ("LRANGE", "rk:missing", 0, -1), [], []),
    ("map", ("HGETALL", "rk:hash"), {b"f": b"v"}, [b"f", b"v"]),
    ("set", ("SMEMBERS", "rk:set"), {b"x"}, [b"x"]),
    ("double", ("ZSCORE", "rk:zset", "m"), 1.5, b"1.5"),
    ("lua double", ("EVAL", lua3("{double=3.25}"), 0), 3.25, b"3.25"),
    ("big number", ("EVAL", lua3(f"{{big_number='{BIG}'}}"), 0), BIG, str(BIG).encode()),
    (
        "verbatim",
        ("EVAL", lua3("{verbatim_string={format='txt', string='hello'}}"), 0),
        VerbatimString("hello"),
        b"hello",
    ),
    ("true", ("EVAL", lua3("true"), 0), True, 1),
    ("false", ("EVAL", lua3("false"), 0), False, 0),
    ("null", ("EVAL", lua3("nil"), 0), None, None),
    ("lua map", ("EVAL", lua3("{map={a=1}}"), 0), {b"a": 1}, [b"a", 1]),
    ("nested", ("EVAL", "return {1, {2, 'x'}, {}}", 0), [1, [2, b"x"], []], [1, [2, b"x"], []]),
]


# Holds the server ~0.3 s, so that the commands sent behind it wait for their replies.
SPIN = (
    "local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]; "
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > 300000; "
    "return 'spun'"
)


def _typed(value: object) -> object:
    """``value`` with the type of every part, so that True is not 1 and b"1" is not "1"."""
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _typed(v) for k, v in value.items()})
    return (type(value).__name__, value)


# -- replies and errors ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", [3, 2])
def test_every_reply_kind_end_to_end(client, redis_url, protocol):
    client.execute_command("SET", "rk:bin", BINARY)
    client.execute_command("RPUSH", "rk:list", "a", "b")
    client.execute_command("HSET", "rk:hash", "f", "v")
    client.execute_command("SADD", "rk:set", "x")
    client.execute_command("ZADD", "rk:zset", 1.5, "m")

    async def main() -> None:
        async with aio_client(redis_url, protocol) as aio:
            # Sent all at once from concurrent tasks: each reply comes back to its command.
            got = await asyncio.gather(*(aio.execute_command(*c) for _, c, _, _ in REPLY_KINDS))
            for (name, _, resp3, resp2), reply in zip(REPLY_KINDS, got):
                want = resp3 if protocol == 3 else resp2
                assert _typed(reply) == _typed(want), name
            if protocol == 3:
                verbatim = got[[k[0] for k in REPLY_KINDS].index("verbatim")]
                assert verbatim.kind == "txt"
            # The protocol the server speaks with this connection is the one asked for.
            info = f" {text(await aio.execute_command('CLIENT', 'INFO')).strip()} "
            assert f" resp={protocol} " in info
            big = b"x" * (3 * 1024 * 1024 + 7)
            assert await aio.execute_command("SET", "rk:big", big) == "OK"
            assert await aio.execute_command("GET", "rk:big") == big
            assert await aio.execute_command("SET", "rk:uni", "héllo ✓") == "OK"
            assert await aio.execute_command("GET", "rk:uni") == "héllo ✓".encode()

    asyncio.run(main())


@pytest.mark.parametrize("protocol", [3, 2])
def test_error_replies_raise_server_errors_in_place(client, redis_url, protocol):
    client.execute_command("SET", "err:string", "v")

    async def main() -> None:
        async with aio_client(redis_url, protocol) as aio:
            commands = [
                ("PING",),
                ("NOSUCHCOMMAND-JEXKV",),
                ("GET", "err:string"),
                ("LPUSH", "err:string", "x"),
                ("EVALSHA", "0" * 40, 0),
                ("EVAL", "return redis.error_reply('MYCODE went wrong')", 0),
                ("ECHO", "after"),
            ]
            got = await asyncio.gather(
                *(aio.execute_command(*c) for c in commands), return_exceptions=True
            )
            assert got[0] == "PONG" and got[2] == b"v" and got[6] == b"after"
            unknown, wrongtype, noscript, custom = got[1], got[3], got[4], got[5]
            assert type(unknown) is ServerError and unknown.code == "ERR"
            assert "nosuchcommand-jexkv" in unknown.message.lower()
            assert isinstance(unknown, jexkv.BackendError)
            assert isinstance(wrongtype, WrongTypeError) and wrongtype.code == "WRONGTYPE"
            assert isinstance(wrongtype, jexkv.WrongTypeError)
            assert isinstance(noscript, NoScriptError) and noscript.code == "NOSCRIPT"
            assert type(custom) is ServerError and custom.code == "MYCODE"
            assert custom.message == "went wrong"
            assert await aio.execute_command("GET", "err:string") == b"v"  # still in step

    asyncio.run(main())


# -- the handshake: passwords, users, databases, names, unix sockets, TLS ----------------


@pytest.mark.parametrize("protocol", [3, 2])
def test_no_password_says_the_server_requires_one(redis_auth_server, protocol):
    async def main() -> None:
        url = f"redis://{redis_auth_server.host}:{redis_auth_server.port}/0"
        async with aio_client(url, protocol, retries=0) as aio:
            with pytest.raises(BackendError) as info:
                await aio.execute_command("GET", "k")
        message = str(info.value)
        assert "the server requires a password" in message, message
        assert "HELLO" not in message, message

    asyncio.run(main())


@pytest.mark.parametrize("protocol", [3, 2])
@pytest.mark.parametrize("username", [None, ACL_USER])
def test_a_wrong_password_says_so_and_hides_it(redis_auth_server, protocol, username):
    wrong = "wrong-Secret-5d2"

    async def main() -> None:
        url = redis_auth_server.url(username=username, password=wrong)
        async with aio_client(url, protocol) as aio:
            with pytest.raises(BackendUnavailable) as info:
                await aio.execute_command("GET", "k")
            texts = [str(info.value), repr(info.value), repr(aio)]
        assert "wrong username or password" in texts[0], texts[0]
        for shown in texts:
            assert wrong not in shown and AUTH_PASSWORD not in shown

    asyncio.run(main())


def test_passwords_and_acl_users(redis_auth_server):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_auth_server.url()) as aio:
            assert await aio.execute_command("PING") == "PONG"
            assert text(await aio.execute_command("ACL", "WHOAMI")) == "default"
            for shown in (repr(aio), repr(shared_connection(aio))):
                assert AUTH_PASSWORD not in shown
        url = redis_auth_server.url(username=ACL_USER, password=ACL_PASSWORD)
        async with AsyncRedis.from_url(url) as aio:
            assert text(await aio.execute_command("ACL", "WHOAMI")) == ACL_USER
            assert await aio.execute_command("SET", "acl:k", "v") == "OK"
            for shown in (repr(aio), repr(shared_connection(aio))):
                assert ACL_PASSWORD not in shown

    asyncio.run(main())


def test_db_selection_and_client_names(client, redis_server):
    async def main() -> None:
        url = redis_server.url(db=2) + "?client_name=jexkv-aio-url&socket_timeout_ms=2000"
        async with AsyncRedis.from_url(url) as db2:
            info = f" {text(await db2.execute_command('CLIENT', 'INFO')).strip()} "
            assert " db=2 " in info and " name=jexkv-aio-url " in info
            assert await db2.execute_command("SET", "only-in-2", "yes") == "OK"
        async with AsyncRedis.from_url(redis_server.url(), client_name="jexkv-aio-kw") as db0:
            assert text(await db0.execute_command("CLIENT", "GETNAME")) == "jexkv-aio-kw"
            assert await db0.execute_command("GET", "only-in-2") is None
        async with AsyncRedis.from_url(redis_server.url(db=2)) as db2:
            assert await db2.execute_command("GET", "only-in-2") == b"yes"

    asyncio.run(main())
    assert client.execute_command("GET", "only-in-2") is None


def test_unix_socket_selects_the_db(redis_unix_server):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_unix_server.unix_url(db=1)) as aio:
            assert await aio.execute_command("FLUSHALL") == "OK"
            info = f" {text(await aio.execute_command('CLIENT', 'INFO')).strip()} "
            assert " db=1 " in info and " addr=/" in info
            assert await aio.execute_command("SET", "unix:k", "v") == "OK"
        async with AsyncRedis.from_url(redis_unix_server.url(db=1)) as tcp1:
            assert await tcp1.execute_command("GET", "unix:k") == b"v"

    asyncio.run(main())


def test_tls_with_the_ca_and_without(redis_tls_server):
    url = redis_tls_server.url()
    assert url.startswith("rediss://127.0.0.1:")

    async def main() -> None:
        async with AsyncRedis.from_url(url, ssl_ca_file=redis_tls_server.tls.ca_cert) as aio:
            assert await aio.execute_command("SET", "tls:k", "v") == "OK"
            assert await run_mixed(aio, 50, "tls") == []
            assert await aio.execute_command("GET", "tls:k") == b"v"
            assert repr(shared_connection(aio)).startswith("<AsyncConnection rediss://")
        # Without the CA the server's certificate cannot be verified: refused.
        unverified = AsyncRedis.from_url(url, retries=0, connect_timeout_ms=2000)
        async with unverified:
            with pytest.raises(BackendUnavailable):
                await unverified.execute_command("PING")

    asyncio.run(main())


# -- pipelines, transactions, scripts -----------------------------------------------------


def test_pipelines_keep_errors_in_place_and_stay_in_step(client, redis_url):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_url) as aio:
            pipe = aio.pipeline()
            assert pipe.execute_command("SET", "p:a", 1) is pipe
            pipe.execute_command("INCR", "p:a").execute_command("GET", "p:a")
            pipe.execute_command("GET", "p:none")
            assert await pipe.execute() == ["OK", 2, b"2", None]
            assert await pipe.execute() == []  # emptied

            pipe.execute_command("SET", "p:s", "text").execute_command("LPUSH", "p:s", "x")
            pipe.execute_command("INCR", "p:s").execute_command("GET", "p:s")
            replies = await pipe.execute(raise_on_error=False)
            assert replies[0] == "OK" and replies[3] == b"text"
            assert isinstance(replies[1], ErrorReply) and replies[1].code == "WRONGTYPE"
            assert isinstance(replies[2], ErrorReply) and replies[2].code == "ERR"

            pipe.execute_command("LPUSH", "p:s", "x").execute_command("SET", "p:b", "after")
            with pytest.raises(WrongTypeError):
                await pipe.execute()
            assert await aio.execute_command("GET", "p:b") == b"after"  # every command ran

            # Pipelines of many tasks, among single commands of others: each contiguous.
            async def piped(i: int) -> list:
                p = aio.pipeline()
                p.execute_command("SET", f"p:{i}", i).execute_command("INCRBY", f"p:{i}", i)
                return await p.execute_command("GET", f"p:{i}").execute()

            got = await asyncio.gather(*(piped(i) for i in range(200)), run_mixed(aio, 200, "pmix"))
            assert got[:200] == [["OK", 2 * i, str(2 * i).encode()] for i in range(200)]
            assert got[200] == []

    asyncio.run(main())


def test_transactions_and_watch(client, redis_url):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_url) as aio, AsyncRedis.from_url(redis_url) as other:
            tx = aio.pipeline(transaction=True)
            tx.execute_command("SET", "t", 1).execute_command("INCR", "t")
            assert await tx.execute_command("GET", "t").execute() == ["OK", 2, b"2"]

            # A runtime error stays in place; the other commands of the transaction ran.
            tx.execute_command("SET", "t:s", "text").execute_command("INCR", "t:s")
            replies = await tx.execute_command("SET", "t:u", "ran").execute(raise_on_error=False)
            assert replies[0] == "OK" and replies[2] == "OK"
            assert isinstance(replies[1], ErrorReply) and replies[1].code == "ERR"

            # A command refused while queueing aborts it all.
            tx.execute_command("SET", "t:x", "1").execute_command("SET", "only-two-args")
            with pytest.raises(ServerError):
                await tx.execute()
            assert await aio.execute_command("GET", "t:x") is None

            # WATCH without a conflict, then with one.
            await tx.watch("t:w")
            assert await tx.execute_command("SET", "t:w", "mine").execute() == ["OK"]
            await tx.watch("t:w")
            assert await other.execute_command("SET", "t:w", "theirs") == "OK"
            tx.execute_command("SET", "t:w", "lost")
            with pytest.raises(WatchError):
                await tx.execute()
            assert await aio.execute_command("GET", "t:w") == b"theirs"
            assert await tx.execute_command("SET", "t:w", "again").execute() == ["OK"]
            assert not aio._dedicated  # the WATCH connections were given back

            with pytest.raises(ConfigError):
                await aio.pipeline().watch("t:w")

    asyncio.run(main())
    assert client.execute_command("GET", "t:w") == b"again"


def test_scripts_are_loaded_again_after_script_flush(client, redis_url):
    lua = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"
    sha = hashlib.sha1(lua.encode()).hexdigest()

    async def main() -> None:
        async with AsyncRedis.from_url(redis_url) as aio:
            assert await aio.execute_command("SCRIPT", "FLUSH") == "OK"
            script = aio.register_script(lua)
            assert await script(keys=["sk"], args=["a1"]) == [b"sk", b"a1", 1]  # NOSCRIPT
            assert await aio.execute_command("SCRIPT", "EXISTS", sha) == [1]
            assert await aio.execute_command("SCRIPT", "FLUSH") == "OK"
            # Many tasks at once after the flush: each gets NOSCRIPT, loads it, runs once.
            got = await asyncio.gather(*(script(keys=["sk"], args=[str(i)]) for i in range(20)))
            assert sorted(reply[2] for reply in got) == list(range(2, 22))
            assert [reply[1] for reply in got] == [str(i).encode() for i in range(20)]
            assert await aio.execute_command("SCRIPT", "EXISTS", sha) == [1]

    asyncio.run(main())
    assert client.execute_command("GET", "sk") == b"21"  # no call ran twice


# -- blocking commands and the AsyncBlocker ------------------------------------------------


def test_blocking_commands_get_a_connection_of_their_own(client, redis_url):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_url, socket_timeout_ms=500) as aio:
            popper = asyncio.create_task(aio.execute_command("BLPOP", "bl:list", 30))
            # Meanwhile the other tasks' commands flow on the shared connection.
            for i in range(20):
                assert await aio.execute_command("INCR", "bl:n") == i + 1
            assert await run_mixed(aio, 100, "bl") == []
            assert not popper.done()
            assert len(aio._dedicated) == 1
            assert await aio.execute_command("RPUSH", "bl:list", "x") == 1
            assert await asyncio.wait_for(popper, 10) == [b"bl:list", b"x"]
            assert not aio._dedicated
            # A blocking command's wait outlasts the socket timeout.
            assert await aio.execute_command("BLPOP", "bl:none", 0.8) is None

    asyncio.run(main())


def test_async_blocker_pops_and_is_interrupted(client, redis_url):
    async def main() -> None:
        async with AsyncRedis.from_url(redis_url) as aio:
            blocker = aio.blocker("jexkv-aio-blocker")
            assert await blocker.interrupt() is False  # no wait running
            await aio.execute_command("ZADD", "bz:a", 2, "two", 1, "one")
            key, member, score = await blocker.bzpopmin(["bz:none", "bz:a"], 1)
            assert (key, member, float(score)) == ("bz:a", b"one", 1.0)
            assert await blocker.bzpopmin(["bz:none"], 0.05) is None
            clients = text(await aio.execute_command("CLIENT", "LIST"))
            assert " name=jexkv-aio-blocker " in clients

            waiting = asyncio.create_task(blocker.bzpopmin(["bz:none"], 60))
            for _ in range(1000):  # until the wait has reached the server
                if await blocker.interrupt():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("interrupt() never found the wait running")
            assert await asyncio.wait_for(waiting, 10) is None  # long before its 60 s

            later = asyncio.create_task(blocker.bzpopmin(["bz:b"], 30))
            await aio.execute_command("ZADD", "bz:b", 5, "m")
            assert (await asyncio.wait_for(later, 10))[:2] == ("bz:b", b"m")
            blocker.close()

    asyncio.run(main())


# -- many tasks, cancelled tasks, loops, closing -------------------------------------------


def test_a_thousand_concurrent_tasks_each_get_their_own_reply(client, redis_url):
    async def main() -> int:
        async with AsyncRedis.from_url(redis_url) as aio:
            assert await aio.execute_command("PING") == "PONG"
            writes = count_writes(aio)
            assert await run_mixed(aio, 1000, "am") == []
            return writes.writes

    writes = asyncio.run(main())
    # About 1,700 commands went out: auto-pipelined, in a few writes, not one each.
    assert 1 <= writes <= 100, f"{writes} writes"
    assert client.execute_command("GET", "am:1") == b"2"  # INCRBY 1, INCR: each ran once
    assert client.execute_command("GET", "am:9") == b"10"


def test_a_cancelled_task_leaves_the_connection_in_step(client, redis_url, caplog):
    for i in range(40):
        client.execute_command("SET", f"c:{i}", f"value-{i}")

    async def main() -> None:
        async with AsyncRedis.from_url(redis_url) as aio:
            # The task that happens to open the shared connection is cancelled: the others
            # waiting for it still get the connection, and their own replies.
            first = [asyncio.create_task(aio.execute_command("GET", f"c:{i}")) for i in range(5)]
            await asyncio.sleep(0)
            first[0].cancel()
            kept = await asyncio.gather(*first[1:])
            assert kept == [f"value-{i}".encode() for i in range(1, 5)]
            assert first[0].cancelled()

            spinning = asyncio.create_task(aio.execute_command("EVAL", SPIN, 0))
            gets = [asyncio.create_task(aio.execute_command("GET", f"c:{i}")) for i in range(40)]
            pipe = aio.pipeline().execute_command("GET", "c:0").execute_command("GET", "c:1")
            piped = asyncio.create_task(pipe.execute())
            await asyncio.sleep(0.05)  # written; the server is spinning
            assert not spinning.done()
            for task in [*gets[::2], piped]:
                task.cancel()
            kept = await asyncio.gather(*gets[1::2])
            assert kept == [f"value-{i}".encode() for i in range(1, 40, 2)]
            assert await spinning == b"spun"
            assert all(task.cancelled() for task in [*gets[::2], piped])
            assert await aio.execute_command("ECHO", "after") == b"after"
            assert await run_mixed(aio, 100, "cancel") == []
            assert shared_connection(aio).pending == 0

    asyncio.run(main())
    assert unretrieved(caplog) == []


def test_a_client_used_from_two_event_loops_in_turn(client, redis_url):
    aio = AsyncRedis.from_url(redis_url, max_connections=1, client_name="jexkv-two-loops")

    def ours() -> int:
        return text(client.execute_command("CLIENT", "LIST")).count(" name=jexkv-two-loops ")

    async def use(n: int) -> None:
        assert await aio.execute_command("SET", "loops", n) == "OK"
        assert await aio.execute_command("GET", "loops") == str(n).encode()
        # Two blocking commands at once under max_connections=1: the second one waits.
        both = [aio.execute_command("BLPOP", f"loops:{k}", 0.05) for k in "ab"]
        assert await asyncio.gather(*both) == [None, None]
        assert await run_mixed(aio, 50, f"loops{n}") == []

    try:
        for n in range(3):
            asyncio.run(use(n))
            # The connection of an earlier loop is ended when a new loop opens its own.
            assert wait_for(lambda: ours() == 1), ours()
    finally:
        aio.close()  # outside any loop, and the loop of its connection is closed
    aio.close()
    assert wait_for(lambda: ours() == 0), ours()


def test_aclose_is_idempotent_and_fails_pending_commands(client, redis_url):
    async def main() -> None:
        # Closed while its shared connection opens: that connection is closed when open.
        aio = AsyncRedis.from_url(redis_url, client_name="jexkv-aclose")
        waiting = [asyncio.create_task(aio.execute_command("ECHO", i)) for i in range(3)]
        for _ in range(3):
            await asyncio.sleep(0)  # connecting
        await aio.aclose()
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
        assert all(isinstance(result, BackendUnavailable) for result in done), done

        aio = AsyncRedis.from_url(redis_url)
        async with aio:
            await aio.execute_command("PING")
            pending = [asyncio.create_task(aio.execute_command("BLPOP", "ac:none", 60))]
            await eventually(lambda: len(aio._dedicated) == 1, what="the BLPOP connection")
            for command in [("EVAL", SPIN, 0), ("INCR", "ac:n")]:  # written, unanswered
                pending.append(asyncio.create_task(aio.execute_command(*command)))
            await asyncio.sleep(0.05)
            # Queued behind them, and not written yet when the client closes.
            pending.append(asyncio.create_task(aio.execute_command("ECHO", "x")))
            await asyncio.sleep(0)
            assert shared_connection(aio).pending == 3
            await aio.aclose()
            await aio.aclose()
            done = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
            assert all(isinstance(result, BackendUnavailable) for result in done), done
            with pytest.raises(BackendUnavailable):
                await aio.execute_command("PING")
        await aio.aclose()  # and once more after the async with

    asyncio.run(main())
    assert client.execute_command("GET", "ac:n") in (None, b"1")  # never run twice
    clients = lambda: text(client.execute_command("CLIENT", "LIST"))  # noqa: E731
    assert wait_for(lambda: " name=jexkv-aclose " not in clients()), clients()
