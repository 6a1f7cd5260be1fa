"""A Redis older than the queue needs (README: 6.0.6) is refused at the queue's first call,
with a ConfigError naming both versions, instead of failing inside its Lua scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import jexkv
from tests.redis_server import FakeRedis

DB = 8  # contract suites: 9, processes: 10, queue layout: 11, job options: 12, interop: 13

_INFO_5 = b"# Server\r\nredis_version:5.0.7\r\nredis_mode:standalone\r\n"


def _old_redis(command: list, index: int) -> object:
    """Redis 5.0.7 as the client sees it: no HELLO, INFO says 5.0.7, no Lua is run."""
    name = command[0].upper()
    if name == b"HELLO":
        return b"-ERR unknown command `HELLO`, with args beginning with: `3`, \r\n"
    if name == b"INFO":
        return b"$%d\r\n%s\r\n" % (len(_INFO_5), _INFO_5)
    if name == b"CONFIG":
        return b"*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n"
    if name in (b"EVALSHA", b"EVAL", b"SCRIPT"):
        return b"-ERR the test's fake Redis 5.0.7 runs no script\r\n"
    return NotImplemented


@pytest.fixture
def old_redis() -> Iterator[FakeRedis]:
    fake = FakeRedis(_old_redis)
    yield fake
    fake.close()
    assert not fake.errors, f"the fake server failed: {fake.errors!r}"


def test_redis_5_is_refused_at_the_first_queue_call(old_redis) -> None:
    queue = jexkv.open_queue(old_redis.url())
    try:
        for _ in range(2):  # refused every time, never a script sent
            with pytest.raises(jexkv.ConfigError, match=r"6\.0\.6") as caught:
                queue.enqueue("mail", "send", {"to": "a@example.com"})
            assert "5.0.7" in str(caught.value)
        with pytest.raises(jexkv.ConfigError, match=r"5\.0\.7"):
            queue.counts("mail")
    finally:
        queue.close()
    names = [command[0].upper() for _, command in old_redis.commands]
    assert b"INFO" in names
    assert not {b"EVALSHA", b"EVAL", b"SCRIPT"} & set(names)


def test_a_real_server_passes_and_is_asked_once(redis_server, url) -> None:
    queue = jexkv.open_queue(url)
    try:
        backend = queue._backend
        calls: list[tuple] = []
        execute = backend._client.execute_command

        def counting(*args, **kwargs):
            calls.append(args)
            return execute(*args, **kwargs)

        backend._client.execute_command = counting
        queue.enqueue("mail", "send", {"to": "a@example.com"})
        queue.enqueue("mail", "send", {"to": "b@example.com"})
        assert queue.counts("mail")["waiting"] == 2
        assert [c for c in calls if c[0] == "INFO"] == [("INFO", "server")]
    finally:
        queue.close()
