"""A server sending malformed RESP, end to end through the client (jexkv.resp.Redis).

The parser's own limits are tested in tests/resp/test_protocol.py; here the question is
what a client does with such a reply: the call raises ProtocolError (BackendUnavailable
when the server just closes, BackendTimeout when it stops in the middle), within the
socket timeout; the connection is dropped, never lent again; memory stays bounded while
the server claims a huge length or streams a line that never ends; and the next call on
the same client, the server now answering properly, works and gets its own reply.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import jexkv
from jexkv.errors import BackendTimeout, BackendUnavailable, ProtocolError
from jexkv.resp.client import Redis
from tests.helpers import ended_at_teardown
from tests.redis_server import (
    HELLO_REPLY,
    FakeRedis,
    LocalListener,
    SendThenClose,
    read_command,
)

GOOD = b"$2\r\nok\r\n"
SOCKET_TIMEOUT_MS = 500
BOUND_S = 3.0  # any failing call returns well within this


def _bad_first_get(reply: bytes):
    """Connection 0 answers GET with ``reply``; every later connection answers properly."""

    def answer(command: list, index: int) -> object:
        if command[0].upper() != b"GET":
            return NotImplemented
        if index == 0:
            return reply
        return b"$%d\r\n%s\r\n" % (len(command[1]), command[1])  # the key, as the value

    return answer


def _client(fake: FakeRedis, **options: Any) -> Redis:
    options.setdefault("retries", 0)
    return Redis.from_url(
        fake.url(),
        socket_timeout_ms=SOCKET_TIMEOUT_MS,
        connect_timeout_ms=SOCKET_TIMEOUT_MS,
        **options,
    )


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _expect_failure_then_recovery(fake: FakeRedis, expected: type, **options: Any) -> None:
    redis = _client(fake, **options)
    try:
        started = time.monotonic()
        with pytest.raises(expected):
            redis.execute_command("GET", "first")
        assert time.monotonic() - started < BOUND_S
        # Dropped: the client closed connection 0 (unless the fake did), and lends it no more.
        if expected is not BackendUnavailable:
            assert _wait(lambda: 0 in fake.closed_by_client), "connection 0 was not closed"
        assert redis.pool._idle == [] and not redis.pool._in_use
        # The next call works, on a new connection, and gets its own reply.
        assert redis.execute_command("GET", "second") == b"second"
        assert redis.execute_command("GET", "third") == b"third"
        assert fake.connections == 2
        assert [c[1] for c in fake.commands_of(1) if c[0].upper() == b"GET"] == [
            b"second",
            b"third",
        ]
    finally:
        redis.close()


# -- malformed replies: ProtocolError, dropped, and the next call works -------------------

MALFORMED = {
    "bulk shorter than its length": b"$3\r\nhello\r\n",
    "negative bulk length": b"$-5\r\n",
    "bulk length not a number": b"$abc\r\n",
    "huge bulk length": b"$999999999999\r\n",
    "huge bulk length with data after": b"$999999999999\r\n" + b"x" * 5000,
    "huge array length": b"*99999999999\r\n",
    "huge map length": b"%99999999999\r\n",
    "deep nesting": b"*1\r\n" * 10000 + b":1\r\n",
    "deep nesting of maps": b"%1\r\n+k\r\n" * 1000 + b":1\r\n",
    "unknown type byte": b"@x\r\n",
    "nul type byte": b"\x00\r\n",
    "streamed string": b"$?\r\n;4\r\nabcd\r\n;0\r\n",
    "binary garbage": b"\xff\xfe\x00garbage\r\n",
    "text garbage": b"HTTP/1.1 400 Bad Request\r\n\r\n",
    "integer that is not one": b":12x\r\n",
    "boolean that is not one": b"#x\r\n",
    "double that is not one": b",abc\r\n",
    "null with content": b"_x\r\n",
    "verbatim without format": b"=2\r\nab\r\n",
    "garbage inside an array": b"*3\r\n:1\r\n@@\r\n:3\r\n",
    "line that never ends": b"+" + b"a" * 70000,
}


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_reply_is_a_protocol_error_and_the_client_recovers(fake_redis, reply):
    fake = fake_redis(_bad_first_get(reply))
    _expect_failure_then_recovery(fake, ProtocolError)


@pytest.mark.parametrize("close", [False, True], ids=["then-silent", "then-close"])
def test_protocol_error_is_not_retried(fake_redis, close):
    reply = b"@bad\r\n"
    fake = fake_redis(_bad_first_get(SendThenClose(reply) if close else reply))
    redis = _client(fake, retries=3)
    try:
        with pytest.raises(ProtocolError):
            redis.execute_command("GET", "first")
        gets = [c for _, c in fake.commands if c[0].upper() == b"GET"]
        assert len(gets) == 1
        assert redis.execute_command("GET", "second") == b"second"
    finally:
        redis.close()


# -- truncated replies: the server closes (unavailable) or goes silent (timeout) ------------

TRUNCATED = {
    "bulk cut in its data": b"$10\r\nhel",
    "bulk cut in its header": b"$1",
    "type byte alone": b"$",
    "simple string without CRLF": b"+OK",
    "array cut after one element": b"*3\r\n:1\r\n",
    "array cut inside an element": b"*2\r\n$3\r\nfo",
    "map cut after a key": b"%1\r\n+key\r\n",
    "attribute without its reply": b"|1\r\n+a\r\n:1\r\n",
}


@pytest.mark.parametrize("reply", list(TRUNCATED.values()), ids=list(TRUNCATED))
def test_truncated_reply_then_close_is_unavailable(fake_redis, reply):
    fake = fake_redis(_bad_first_get(SendThenClose(reply)))
    _expect_failure_then_recovery(fake, BackendUnavailable)


@pytest.mark.parametrize("reply", list(TRUNCATED.values()), ids=list(TRUNCATED))
def test_truncated_reply_then_silence_times_out(fake_redis, reply):
    fake = fake_redis(_bad_first_get(reply))
    _expect_failure_then_recovery(fake, BackendTimeout)


def test_bulk_longer_than_its_data_times_out_and_never_desyncs(fake_redis):
    # "$10" with 5 bytes: the reply of the next command would complete it, if the
    # connection were reused.
    fake = fake_redis(_bad_first_get(b"$10\r\nhello\r\n"))
    _expect_failure_then_recovery(fake, BackendTimeout)


def test_truncated_read_is_retried_on_a_new_connection(fake_redis):
    fake = fake_redis(_bad_first_get(SendThenClose(b"$10\r\nhel")))
    redis = _client(fake, retries=3)
    try:
        assert redis.execute_command("GET", "first") == b"first"  # GET is safe to repeat
        assert fake.connections == 2
    finally:
        redis.close()


# -- malformed replies elsewhere: the handshake, a pipeline, the KV store ------------------


def test_malformed_handshake_reply(fake_redis):
    def answer(command: list, index: int) -> object:
        if command[0].upper() == b"HELLO" and index == 0:
            return b"%3\r\n+server\r\n@@@\r\n"
        if command[0].upper() == b"GET":
            return b"$%d\r\n%s\r\n" % (len(command[1]), command[1])
        return NotImplemented

    fake = fake_redis(answer)
    redis = _client(fake)
    try:
        with pytest.raises(ProtocolError):
            redis.execute_command("GET", "first")
        assert _wait(lambda: 0 in fake.closed_by_client)
        assert redis.execute_command("GET", "second") == b"second"
        assert fake.connections == 2
    finally:
        redis.close()


def test_malformed_reply_inside_a_pipeline(fake_redis):
    def answer(command: list, index: int) -> object:
        if command[0].upper() != b"GET":
            return NotImplemented
        if index == 0 and command[1] == b"b":
            return b"$-7\r\n"
        return b"$%d\r\n%s\r\n" % (len(command[1]), command[1])

    fake = fake_redis(answer)
    redis = _client(fake)
    try:
        pipe = redis.pipeline()
        for key in ("a", "b", "c"):
            pipe.execute_command("GET", key)
        with pytest.raises(ProtocolError):
            pipe.execute()
        assert _wait(lambda: 0 in fake.closed_by_client)
        pipe = redis.pipeline()
        for key in ("d", "b", "e"):
            pipe.execute_command("GET", key)
        assert pipe.execute() == [b"d", b"b", b"e"]
        assert fake.connections == 2
    finally:
        redis.close()


def test_malformed_reply_to_the_kv_store(fake_redis):
    def answer(command: list, index: int) -> object:
        if command[0].upper() != b"GET":
            return NotImplemented
        if index == 0:
            return b"*1\r\n" * 5000
        return b'$4\r\n"ok"\r\n'

    fake = fake_redis(answer)
    kv = jexkv.open_kv(fake.url(), socket_timeout_ms=SOCKET_TIMEOUT_MS, retries=0)
    try:
        with pytest.raises(jexkv.ProtocolError):
            kv.get("k")
        assert kv.get("k") == "ok"
    finally:
        kv.close()


# -- a reply the client never asked for ----------------------------------------------------


def test_unsolicited_reply_in_a_later_packet_is_never_taken_for_the_next_one(fake_redis):
    fake = fake_redis(_bad_first_get(b"$5\r\nfirst\r\n"))
    redis = _client(fake)
    try:
        assert redis.execute_command("GET", "first") == b"first"
        (idle,) = redis.pool._idle
        # Once the client has its reply: a reply it never asked for, on the idle connection.
        fake._socks[0].sendall(b"$4\r\nevil\r\n")
        readable, _, _ = select.select([idle._sock], [], [], BOUND_S)
        assert readable, "the extra reply never reached the client"
        assert redis.execute_command("GET", "second") == b"second"
        assert fake.connections == 2  # the idle connection was dropped, never lent
        assert not idle.is_connected
        assert [c[1] for c in fake.commands_of(0) if c[0].upper() == b"GET"] == [b"first"]
    finally:
        redis.close()


def test_unsolicited_reply_in_the_same_packet_is_never_taken_for_the_next_one(fake_redis):
    fake = fake_redis(_extra_after(b"first", b"$4\r\nevil\r\n"))
    redis = _client(fake)
    try:
        assert redis.execute_command("GET", "first") == b"first"
        got = _get_or_error(redis, "second")
        assert got in (b"second", "error"), f"GET second answered {got!r}: out of step"
    finally:
        redis.close()


def _extra_after(key: bytes, extra: bytes):
    """On connection 0, GET ``key`` is answered rightly, followed by ``extra`` in the same
    write; everything else is answered rightly."""

    def answer(command: list, index: int) -> object:
        if command[0].upper() != b"GET":
            return NotImplemented
        value = b"$%d\r\n%s\r\n" % (len(command[1]), command[1])
        if index == 0 and command[1] == key:
            return value + extra
        return value

    return answer


def _get_or_error(redis: Redis, key: str) -> object:
    try:
        return redis.execute_command("GET", key)
    except jexkv.BackendError:
        return "error"


# -- memory stays bounded ------------------------------------------------------------------


class _Streamer(LocalListener):
    """A server whose connection 0 answers GET with ``prefix`` then ``chunk`` again and again
    (up to ``limit`` bytes, or until the client goes), then goes silent; later connections
    answer properly.
    It allocates one chunk, so tracemalloc sees the client's memory, not the server's."""

    def __init__(self, prefix: bytes, chunk: bytes, limit: int) -> None:
        self.prefix, self.chunk, self.limit = prefix, chunk, limit
        self.streamed = 0
        self.connections = 0
        self._threads: list[threading.Thread] = []
        super().__init__(8)

    def _accepted(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._serve, args=(conn, self.connections))
        thread.daemon = True
        self.connections += 1
        self._threads.append(thread)
        thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(5)
        try:
            with conn, conn.makefile("rb") as reader:
                while not self.stopped.is_set():
                    command = read_command(reader)
                    if command is None:
                        return
                    name = command[0].upper()
                    if name == b"HELLO":
                        conn.sendall(HELLO_REPLY)
                    elif name == b"GET" and index == 0:
                        conn.sendall(self.prefix)
                        while self.streamed < self.limit and not self.stopped.is_set():
                            conn.sendall(self.chunk)
                            self.streamed += len(self.chunk)
                        self.stopped.wait(30)  # then silence, until the test ends
                        return
                    elif name == b"GET":
                        conn.sendall(b"$%d\r\n%s\r\n" % (len(command[1]), command[1]))
                    else:
                        conn.sendall(b"+OK\r\n")
        except OSError:
            pass  # the client went away: what the test wants to see

    def close(self) -> None:
        self.stop_listening()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def streamer() -> Iterator[Any]:
    def make(prefix: bytes, chunk: bytes = b"a" * 65536, limit: int = 64 << 20) -> _Streamer:
        return _Streamer(prefix, chunk, limit)

    yield from ended_at_teardown(make, _Streamer.close)


MEMORY_LIMIT = 4 << 20  # bytes: far below what the server streams or claims


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"+", ProtocolError),  # a simple string whose line never ends
        (b"$999999999999\r\n", ProtocolError),  # a bulk far over the limit, then data
        (b"*99999999999\r\n", ProtocolError),  # an array far over the limit, then data
        (b"$" + b"9" * 100, ProtocolError),  # a length line that never ends
    ],
    ids=["endless-line", "huge-bulk", "huge-array", "endless-length"],
)
def test_memory_stays_bounded_while_the_server_streams(streamer, prefix, expected):
    server = streamer(prefix)
    redis = Redis.from_url(server.url(), socket_timeout_ms=2000, retries=0)
    try:
        redis.execute_command("PING")
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(expected):
                redis.execute_command("GET", "first")
            took = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert took < BOUND_S
        assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
        assert server.streamed < server.limit, "the client read all the server sent"
        assert redis.execute_command("GET", "second") == b"second"
    finally:
        redis.close()


@pytest.mark.parametrize(
    "prefix",
    [b"$536870000\r\nabc", b"*4000000000\r\n:1\r\n", b"%2000000000\r\n+k\r\n"],
    ids=["bulk-near-the-limit", "array-near-the-limit", "map-near-the-limit"],
)
def test_huge_declared_length_allocates_nothing_ahead(streamer, prefix):
    # Lengths under the parser's limits, then silence: nothing is allocated for what is
    # only announced, the call times out, and the connection is dropped.
    server = streamer(prefix, chunk=b"", limit=0)
    redis = Redis.from_url(server.url(), socket_timeout_ms=SOCKET_TIMEOUT_MS, retries=0)
    try:
        redis.execute_command("PING")
        tracemalloc.start()
        try:
            with pytest.raises(BackendTimeout):
                redis.execute_command("GET", "first")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
        assert redis.execute_command("GET", "second") == b"second"
        assert server.connections == 2
    finally:
        redis.close()
