"""The asyncio clients of a Redis Cluster (AsyncRedisCluster) and of Redis Sentinel
(AsyncSentinelRedis), against the session's real cluster and sentinel set.

* Commands, pipelines (split by node, answered in order), transactions (one slot) and
  scripts go to the node serving their slot; a blocking command does not hold the node's
  shared connection.
* A slot migrates while tasks write, read and count on it: ASK while it is half moved,
  TRYAGAIN for a command over keys on both sides, MOVED after; no command is lost or run
  twice, and no error reaches the tasks (mirrors test_cluster_migration.py).
* The primary is killed: commands fail only with BackendErrors until the sentinels promote
  the replica, then work again with every write the replica had (mirrors
  test_sentinel_failover.py); a primary answering READONLY is left for the new one, where
  the command is sent again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jexkv.errors import BackendError, ConfigError
from jexkv.resp.aio_cluster import AsyncRedisCluster
from jexkv.resp.aio_connect import async_client_for_url
from jexkv.resp.aio_sentinel import AsyncSentinelRedis
from jexkv.resp.cluster import key_slot
from tests.cluster.test_cluster_migration import other_node
from tests.helpers import wait_for
from tests.redis_cluster import STEP_BATCH, RedisCluster, keys_in_slot
from tests.redis_sentinel import RedisSentinelSet
from tests.resp.aio_helpers import run_mixed, text

WAIT = 30.0  # generous deadline for what a slow machine may take


def test_commands_pipelines_transactions_and_scripts_go_by_slot(cluster: RedisCluster) -> None:
    keys = [f"r{i}" for i in range(60)]
    owners = {key: cluster.owner(key_slot(key)) for key in keys}
    assert len(set(owners.values())) == 3  # every node holds some

    async def main() -> None:
        async with async_client_for_url(cluster.url(), {}) as aio:
            assert isinstance(aio, AsyncRedisCluster)
            got = await asyncio.gather(
                *(aio.execute_command("SET", k, i) for i, k in enumerate(keys))
            )
            assert got == ["OK"] * 60
            pipe = aio.pipeline()
            for key in keys:
                pipe.execute_command("INCR", key)
            for key in keys:
                pipe.execute_command("GET", key)
            assert await pipe.execute() == [
                *range(1, 61),
                *(str(i).encode() for i in range(1, 61)),
            ]

            tx = aio.pipeline(transaction=True)
            tx.execute_command("SET", "{t}a", 1).execute_command("INCR", "{t}a")
            assert await tx.execute() == ["OK", 2]
            tx.execute_command("SET", "a", 1).execute_command("SET", "b", 2)
            assert key_slot("a") != key_slot("b")
            with pytest.raises(ConfigError, match="one slot"):
                await tx.execute()

            script = aio.register_script("return redis.call('INCR', KEYS[1])")
            assert await asyncio.gather(*(script(keys=[f"s{i}"]) for i in range(30))) == [1] * 30
            for port in cluster.ports:  # every node forgets it: each loads it again
                cluster.client(port).execute_command("SCRIPT", "FLUSH")
            assert await asyncio.gather(*(script(keys=[f"s{i}"]) for i in range(30))) == [2] * 30

            # A blocking command waits on a connection of its own, not the node's shared one.
            popper = asyncio.create_task(aio.execute_command("BLPOP", "{r1}:list", 30))
            assert await aio.execute_command("GET", "r1") == b"2"
            assert await run_mixed(aio, 300, "cm") == []
            assert not popper.done()
            assert await aio.execute_command("RPUSH", "{r1}:list", "x") == 1
            assert await asyncio.wait_for(popper, 10) == [b"{r1}:list", b"x"]

            found = {name async for name in aio.scan_iter("r*")}
            assert found == {key.encode() for key in keys}

    asyncio.run(main())
    for i, key in enumerate(keys):  # each key lives on the node serving its slot
        assert cluster.client(owners[key]).execute_command("GET", key) == str(i + 1).encode()


def test_a_slot_migrates_under_load(cluster: RedisCluster) -> None:
    slot = key_slot("{amig}")
    keys = [f"{{amig}}:{i}" for i in range(12)] + keys_in_slot(slot, 4, prefix="amig-")
    static = [f"{{amig}}:static:{i}" for i in range(4)]  # left alone by the load: MGET
    counter = "{amig}:counter"
    source = cluster.owner(slot)
    target = other_node(cluster, source)
    src = cluster.client(source)
    for key in static:
        src.execute_command("SET", key, key)

    last: dict[str, int] = {}  # key -> its last acknowledged value
    problems: list[str] = []  # errors and stale reads of the load; states it did not get through
    counted = [0]  # acknowledged INCRs of the counter
    rounds = [0]

    async def load(aio: AsyncRedisCluster, task: int, stop: asyncio.Event) -> None:
        mine = keys[task::4]
        n = 0
        while not stop.is_set():
            n += 1
            key = mine[n % len(mine)]
            try:
                assert await aio.execute_command("SET", key, n) == "OK"
                last[key] = n
                got = await aio.execute_command("GET", key)
                if got != str(n).encode():
                    problems.append(f"{key}: wrote {n}, read {got!r}")
                await aio.execute_command("INCR", counter)
                counted[0] += 1
            except Exception as exc:
                problems.append(f"{key}: {exc!r}")
                await asyncio.sleep(0.01)
            rounds[0] += 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mget: list[Any] = []

        def hook(step: str) -> None:
            """Between the migration's steps (in its thread): let the load go on in each
            state; once the static keys are on both sides, send an MGET of them (TRYAGAIN
            until the slot is moved). Never raises: the slot would stay half moved."""
            try:
                target_rounds = rounds[0] + 20
                if not wait_for(lambda: rounds[0] >= target_rounds, WAIT):
                    problems.append(f"the load did not go on at {step}")
                left = set(src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000))
                on_source = len(left & {key.encode() for key in static})
                if step == STEP_BATCH and not mget and 0 < on_source < len(static):
                    before = cluster.error_replies().get("TRYAGAIN", 0)
                    call = aio.execute_command("MGET", *static)
                    mget.append(asyncio.run_coroutine_threadsafe(call, loop))
                    if not wait_for(
                        lambda: cluster.error_replies().get("TRYAGAIN", 0) > before, WAIT
                    ):
                        problems.append("the MGET over both sides got no TRYAGAIN")
            except Exception as exc:
                problems.append(f"the hook at {step}: {exc!r}")

        stop = asyncio.Event()
        async with AsyncRedisCluster.from_url(cluster.url()) as aio:
            tasks = [asyncio.create_task(load(aio, t, stop)) for t in range(4)]
            moved = await asyncio.to_thread(cluster.migrate_slot, slot, source, target, 1, hook)
            target_rounds = rounds[0] + 50  # and on, with the slot moved (MOVED)
            while rounds[0] < target_rounds and not problems:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
            assert problems == [], problems[:5]
            assert moved >= len(static)
            assert len(mget) == 1, "the static keys were never on both sides"
            assert await asyncio.wait_for(asyncio.wrap_future(mget[0]), WAIT) == [
                key.encode() for key in static
            ]
            # Every acknowledged write reads back with its last value, from the new owner.
            got = await asyncio.gather(*(aio.execute_command("GET", key) for key in last))
            assert got == [str(n).encode() for n in last.values()]
            assert await aio.execute_command("GET", counter) == str(counted[0]).encode()

    replies_before = cluster.error_replies()
    asyncio.run(main())
    replies = cluster.error_replies()
    for code in ("ASK", "TRYAGAIN", "MOVED"):
        assert replies.get(code, 0) > replies_before.get(code, 0), (code, replies)
    assert cluster.owner(slot) == target
    assert len(last) == len(keys)
    count = cluster.client(target).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    assert int(count) == len(keys) + len(static) + 1


def _bulk(value: object) -> bytes:
    data = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def test_a_readonly_primary_is_left_for_the_new_one(fake_redis, redis_server, unique_name):
    """A demoted primary answers READONLY: the command did not run there, so the client
    asks the sentinels again and sends it to the primary they name now."""

    def demoted(command: list, index: int) -> object:
        if command[0].upper() == b"ROLE":  # it still said it was the primary when asked
            return b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
        if command[0].upper() in (b"SET", b"EVALSHA"):
            return b"-READONLY You can't write against a read only replica.\r\n"
        return NotImplemented

    old = fake_redis(demoted)
    asked: list[int] = []

    def sentinel_answer(command: list, index: int) -> object:
        if command[0].upper() != b"SENTINEL":
            return NotImplemented
        asked.append(index)
        # The demoted one to each client first, then the real server.
        primary = old if len(asked) % 2 else redis_server
        return b"*2\r\n" + _bulk(primary.host) + _bulk(primary.port)

    sentinel = fake_redis(sentinel_answer)
    key = f"{unique_name}:k"

    async def main() -> None:
        options: dict[str, Any] = {"password": redis_server.password, "socket_timeout": 2.0}
        seeds = [(sentinel.host, sentinel.port)]
        async with AsyncSentinelRedis(seeds, "svc", **options) as aio:
            assert await aio.execute_command("SET", key, "v") == "OK"
            assert await aio.execute_command("GET", key) == b"v"
        async with AsyncSentinelRedis(seeds, "svc", **options) as aio:
            script = aio.register_script("return redis.call('INCR', KEYS[1])")
            assert await script(keys=[f"{key}:n"]) == 1

    asyncio.run(main())
    assert len(asked) == 4
    names = [c[0].upper() for _, c in old.commands]
    assert names.count(b"SET") == 1 and names.count(b"EVALSHA") == 1


def test_commands_keep_working_after_the_primary_fails_over(sentinel: RedisSentinelSet) -> None:
    old_primary = sentinel.primary_port()
    (replica,) = sentinel.replica_ports()
    errors: list[BaseException] = []

    async def main() -> None:
        async with async_client_for_url(sentinel.url(), {"socket_timeout_ms": 2000}) as aio:
            assert isinstance(aio, AsyncSentinelRedis)
            before = [f"before:{i}" for i in range(50)]
            got = await asyncio.gather(*(aio.execute_command("SET", k, k) for k in before))
            assert got == ["OK"] * 50
            assert await aio.execute_command("WAIT", 1, 1000) == 1  # the replica has them

            assert await asyncio.to_thread(sentinel.kill_primary) == old_primary
            deadline = time.monotonic() + WAIT
            while True:  # until the promoted replica acknowledges a write
                try:
                    assert await aio.execute_command("INCR", "after") == 1
                    break
                except BackendError as exc:  # the failover window: BackendErrors only
                    errors.append(exc)
                assert time.monotonic() < deadline, f"no write acknowledged: {errors[-3:]}"
                await asyncio.sleep(0.05)
            assert await asyncio.to_thread(sentinel.primary_port) == replica

            assert await run_mixed(aio, 200, "failover") == []
            assert await aio.execute_command("MGET", *before) == [k.encode() for k in before]
            assert await aio.execute_command("GET", "after") == b"1"  # ran once

    asyncio.run(main())
    print(f"{len(errors)} BackendErrors during the failover: {sorted({text(e) for e in errors})}")
    assert sentinel.replication(replica).get("role") == "master"
