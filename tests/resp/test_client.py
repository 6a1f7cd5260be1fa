"""The client (jexkv.resp.client.Redis) against real redis-server processes and fakes."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import pytest

import jexkv
from jexkv.errors import BackendError, BackendTimeout, BackendUnavailable, ProtocolError
from jexkv.resp.client import Redis
from jexkv.resp.errors import NoScriptError, ServerError, WatchError, WrongTypeError
from jexkv.resp.protocol import ErrorReply
from tests.redis_server import HOLD, SendThenClose
from tests.resp.conftest import ACL_PASSWORD, ACL_USER, AUTH_PASSWORD


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def client_info(redis: Redis) -> str:
    return " " + _s(redis.execute_command("CLIENT", "INFO")) + " "


def wait_until(predicate, timeout: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# -- commands and replies ------------------------------------------------------------


def test_reply_types(client):
    assert client.execute_command("PING") == "PONG"
    assert client.execute_command("SET", "k", "v") == "OK"
    assert client.execute_command("GET", "k") == b"v"
    assert client.execute_command("GET", "missing") is None
    assert client.execute_command("INCR", "n") == 1
    assert client.execute_command("INCRBY", "n", 41) == 42
    assert client.execute_command("RPUSH", "l", "a", b"b", 3) == 3
    assert client.execute_command("LRANGE", "l", 0, -1) == [b"a", b"b", b"3"]
    assert client.execute_command("LRANGE", "missing", 0, -1) == []
    assert client.execute_command("HSET", "h", "f1", "v1", "f2", "v2") == 2
    assert client.execute_command("HGETALL", "h") == {b"f1": b"v1", b"f2": b"v2"}
    assert client.execute_command("INCRBYFLOAT", "f", 1.5) == b"1.5"
    assert client.execute_command("EXISTS", "k", "missing") == 1


def test_nil_replies(client):
    assert client.execute_command("GET", "nothing") is None
    assert client.execute_command("BLPOP", "nothing", "0.01") is None
    assert client.execute_command("HGET", "nothing", "f") is None


def test_binary_and_unicode_values(client):
    binary = bytes(range(256)) + b"\r\n$-1\r\n*1\r\n"
    assert client.execute_command("SET", "bin", binary) == "OK"
    assert client.execute_command("GET", "bin") == binary
    assert client.execute_command("SET", "uni", "héllo ✓") == "OK"
    assert client.execute_command("GET", "uni") == "héllo ✓".encode()
    big = b"x" * (3 * 1024 * 1024 + 7)
    assert client.execute_command("SET", "big", big) == "OK"
    assert client.execute_command("GET", "big") == big


def test_blocking_command_outlasts_the_socket_timeout(redis_url):
    with Redis.from_url(redis_url, socket_timeout_ms=200) as redis:
        assert redis.execute_command("BLPOP", "blocking:none", "0.6") is None
        assert redis.execute_command("PING") == "PONG"


def test_error_reply_raises_server_error(client):
    with pytest.raises(ServerError) as info:
        client.execute_command("NOSUCHCOMMAND-JEXKV")
    assert info.value.code == "ERR"
    assert "NOSUCHCOMMAND-JEXKV".lower() in info.value.message.lower()
    assert isinstance(info.value, jexkv.BackendError)
    assert client.execute_command("PING") == "PONG"  # the connection is still in step


def test_wrongtype_error(client):
    client.execute_command("SET", "k", "v")
    with pytest.raises(WrongTypeError) as info:
        client.execute_command("LPUSH", "k", "x")
    error = info.value
    assert isinstance(error, ServerError)
    assert isinstance(error, jexkv.WrongTypeError)
    assert error.code == "WRONGTYPE"
    assert "wrong kind" in error.message
    assert client.execute_command("GET", "k") == b"v"


def test_noscript_error(client):
    with pytest.raises(NoScriptError) as info:
        client.execute_command("EVALSHA", "0" * 40, 0)
    assert info.value.code == "NOSCRIPT"
    assert isinstance(info.value, ServerError)


def test_client_name_and_url_options(redis_server):
    url = redis_server.url() + "?client_name=jexkv-url-name&socket_timeout_ms=2000"
    with Redis.from_url(url) as redis:
        assert _s(redis.execute_command("CLIENT", "GETNAME")) == "jexkv-url-name"
    with Redis.from_url(redis_server.url(), client_name="jexkv-kw-name") as redis:
        assert _s(redis.execute_command("CLIENT", "GETNAME")) == "jexkv-kw-name"


def test_db_selection(client, redis_server):
    with Redis.from_url(redis_server.url(db=2)) as db2:
        assert " db=2 " in client_info(db2)
        assert db2.execute_command("SET", "only-in-2", "yes") == "OK"
    assert client.execute_command("GET", "only-in-2") is None
    with Redis.from_url(redis_server.url(db=2)) as db2:
        assert db2.execute_command("GET", "only-in-2") == b"yes"


def test_close_then_use_raises(redis_url):
    redis = Redis.from_url(redis_url)
    assert redis.execute_command("PING") == "PONG"
    redis.close()
    with pytest.raises(jexkv.ClosedError):
        redis.execute_command("PING")


# -- pipelines and transactions --------------------------------------------------------


def test_pipeline_without_transaction(client):
    pipe = client.pipeline()
    assert pipe.execute_command("SET", "a", 1) is pipe
    pipe.execute_command("INCR", "a").execute_command("GET", "a").execute_command("GET", "none")
    assert pipe.execute() == ["OK", 2, b"2", None]
    assert pipe.execute() == []  # emptied


def test_pipeline_error_values_in_place(client):
    pipe = client.pipeline()
    pipe.execute_command("SET", "a", "text")
    pipe.execute_command("LPUSH", "a", "x")
    pipe.execute_command("INCR", "a")
    pipe.execute_command("GET", "a")
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] == "OK"
    assert isinstance(replies[1], ErrorReply) and replies[1].code == "WRONGTYPE"
    assert isinstance(replies[2], ErrorReply) and replies[2].code == "ERR"
    assert replies[3] == b"text"


def test_pipeline_raises_on_error_and_stays_in_step(client):
    pipe = client.pipeline()
    pipe.execute_command("SET", "a", "text")
    pipe.execute_command("LPUSH", "a", "x")
    pipe.execute_command("SET", "b", "after")
    with pytest.raises(WrongTypeError):
        pipe.execute()
    assert client.execute_command("GET", "b") == b"after"  # every command ran
    for _ in range(5):  # no stray reply left on any pooled connection
        assert client.execute_command("GET", "a") == b"text"


def test_pipeline_of_10000_commands(client):
    pipe = client.pipeline()
    for _ in range(10_000):
        pipe.execute_command("INCR", "counter")
    replies = pipe.execute()
    assert replies == list(range(1, 10_001))
    assert client.execute_command("GET", "counter") == b"10000"


def test_transaction(client):
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("SET", "t", 1).execute_command("INCR", "t").execute_command("GET", "t")
    assert pipe.execute() == ["OK", 2, b"2"]


def test_transaction_runtime_error_in_place(client):
    client.execute_command("SET", "t", "text")
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("INCR", "t").execute_command("SET", "u", "ran")
    replies = pipe.execute(raise_on_error=False)
    assert isinstance(replies[0], ErrorReply) and replies[0].code == "ERR"
    assert replies[1] == "OK"
    pipe.execute_command("INCR", "t").execute_command("SET", "u", "ran again")
    with pytest.raises(ServerError):
        pipe.execute()
    assert client.execute_command("GET", "u") == b"ran again"


def test_transaction_refused_command_aborts(client):
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("SET", "x", "1")
    pipe.execute_command("SET", "only-two-args")  # refused while queueing: EXECABORT
    with pytest.raises(ServerError):
        pipe.execute()
    assert client.execute_command("GET", "x") is None
    assert client.execute_command("PING") == "PONG"


def test_watch_without_conflict(client):
    client.execute_command("SET", "w", "1")
    pipe = client.pipeline(transaction=True)
    pipe.watch("w")
    pipe.execute_command("SET", "w", "2")
    assert pipe.execute() == ["OK"]
    assert client.execute_command("GET", "w") == b"2"


def test_watch_conflict_raises_watch_error(client, redis_url):
    client.execute_command("SET", "w", "mine")
    pipe = client.pipeline(transaction=True)
    pipe.watch("w")
    with Redis.from_url(redis_url) as other:
        assert other.execute_command("SET", "w", "theirs") == "OK"
    pipe.execute_command("SET", "w", "lost")
    with pytest.raises(WatchError):
        pipe.execute()
    assert client.execute_command("GET", "w") == b"theirs"
    # The pipeline and the client go on working.
    pipe.execute_command("SET", "w", "again")
    assert pipe.execute() == ["OK"]


# -- scripts -------------------------------------------------------------------------


def test_register_script_loads_on_noscript_and_after_flush(client):
    lua = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"
    sha = hashlib.sha1(lua.encode()).hexdigest()
    client.execute_command("SCRIPT", "FLUSH")
    script = client.register_script(lua)
    assert client.execute_command("SCRIPT", "EXISTS", sha) == [0]
    assert script(keys=["sk"], args=["a1"]) == [b"sk", b"a1", 1]  # NOSCRIPT -> loaded
    assert client.execute_command("SCRIPT", "EXISTS", sha) == [1]
    assert script(keys=["sk"], args=["a2"]) == [b"sk", b"a2", 2]
    client.execute_command("SCRIPT", "FLUSH")
    assert script(keys=["sk"], args=["a3"]) == [b"sk", b"a3", 3]  # reloaded
    assert client.execute_command("SCRIPT", "EXISTS", sha) == [1]


def test_script_error_reply_raises(client):
    script = client.register_script("return redis.error_reply('MYCODE went wrong')")
    with pytest.raises(ServerError) as info:
        script()
    assert info.value.code == "MYCODE"


# -- pub/sub --------------------------------------------------------------------------


def numsub(redis: Redis, channel: str) -> int:
    reply = redis.execute_command("PUBSUB", "NUMSUB", channel)
    if isinstance(reply, dict):
        return int(next(iter(reply.values())))
    return int(reply[1])


def next_message(pubsub, timeout: float = 5.0, publish=None) -> dict:
    """The next message (not a subscription event); ``publish()`` is called between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if publish is not None:
            publish()
        message = pubsub.get_message(timeout=0.1)
        if message is not None and _s(message["type"]) in ("message", "pmessage"):
            return message
    raise AssertionError("no message came")


def test_pubsub_subscribe_and_psubscribe(client, redis_url):
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("news")
        pubsub.psubscribe("events.*")
        wait_until(lambda: numsub(client, "news") == 1, what="the subscription")
        wait_until(lambda: client.execute_command("PUBSUB", "NUMPAT") == 1, what="psubscribe")
        with Redis.from_url(redis_url) as publisher:
            assert publisher.execute_command("PUBLISH", "news", "hello") == 1
            assert publisher.execute_command("PUBLISH", "events.login", "alice") == 1
        first = next_message(pubsub)
        assert _s(first["type"]) == "message"
        assert _s(first["channel"]) == "news"
        assert first["data"] == b"hello"
        second = next_message(pubsub)
        assert _s(second["type"]) == "pmessage"
        assert _s(second["pattern"]) == "events.*"
        assert _s(second["channel"]) == "events.login"
        assert second["data"] == b"alice"
        pubsub.unsubscribe("news")
        wait_until(lambda: numsub(client, "news") == 0, what="the unsubscription")
    finally:
        pubsub.close()


def test_pubsub_get_message_timeout_returns_none(client):
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("quiet")
        deadline = time.monotonic() + 5
        while pubsub.get_message(timeout=0.2) is not None:  # the subscribe events
            assert time.monotonic() < deadline
        started = time.monotonic()
        assert pubsub.get_message(timeout=0.2) is None
        assert time.monotonic() - started < 2
    finally:
        pubsub.close()


def test_pubsub_listen(client, redis_url):
    pubsub = client.pubsub()
    got = []

    def consume() -> None:
        for message in pubsub.listen():
            if _s(message["type"]) == "message":
                got.append(message["data"])
                if len(got) == 2:
                    return

    try:
        pubsub.subscribe("stream")
        wait_until(lambda: numsub(client, "stream") == 1, what="the subscription")
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        client.execute_command("PUBLISH", "stream", "one")
        client.execute_command("PUBLISH", "stream", "two")
        thread.join(10)
        assert not thread.is_alive()
        assert got == [b"one", b"two"]
    finally:
        pubsub.close()


def test_pubsub_resubscribes_after_client_kill(client):
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("alive")
        pubsub.psubscribe("alive.*")
        wait_until(lambda: numsub(client, "alive") == 1, what="the subscription")
        assert client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        message = next_message(
            pubsub, timeout=10, publish=lambda: client.execute_command("PUBLISH", "alive", "back")
        )
        assert message["data"] == b"back"
        assert numsub(client, "alive") == 1
        assert client.execute_command("PUBSUB", "NUMPAT") == 1
    finally:
        pubsub.close()


def test_pubsub_resubscribes_after_server_restart(redis_restartable_server):
    server = redis_restartable_server
    with Redis.from_url(server.url()) as redis:
        pubsub = redis.pubsub()
        try:
            pubsub.subscribe("restart")
            wait_until(lambda: numsub(redis, "restart") == 1, what="the subscription")
            server.restart()
            with Redis.from_url(server.url()) as publisher:
                message = next_message(
                    pubsub,
                    timeout=10,
                    publish=lambda: publisher.execute_command("PUBLISH", "restart", "again"),
                )
            assert message["data"] == b"again"
        finally:
            pubsub.close()


# -- auth, unix sockets, TLS --------------------------------------------------------------


def test_password_url(redis_auth_server):
    with Redis.from_url(redis_auth_server.url()) as redis:
        assert redis.execute_command("PING") == "PONG"
        assert _s(redis.execute_command("ACL", "WHOAMI")) == "default"
        assert AUTH_PASSWORD not in repr(redis)


def test_wrong_password_hidden_in_the_error(redis_auth_server):
    url = redis_auth_server.url(password="wrong-Secret-5d2")
    redis = Redis.from_url(url, retries=0)
    try:
        with pytest.raises(BackendUnavailable) as info:
            redis.execute_command("PING")
        for text in (str(info.value), repr(info.value), repr(redis)):
            assert "wrong-Secret-5d2" not in text
            assert AUTH_PASSWORD not in text
    finally:
        redis.close()


def test_acl_user(redis_auth_server):
    url = redis_auth_server.url(username=ACL_USER, password=ACL_PASSWORD)
    with Redis.from_url(url) as redis:
        assert _s(redis.execute_command("ACL", "WHOAMI")) == ACL_USER
        assert redis.execute_command("SET", "acl:k", "v") == "OK"
        assert ACL_PASSWORD not in repr(redis)


def test_unix_socket_url_selects_the_db(redis_unix_server):
    with Redis.from_url(redis_unix_server.unix_url(db=1)) as redis:
        assert redis.execute_command("FLUSHALL") == "OK"
        assert " db=1 " in client_info(redis)
        assert redis.execute_command("SET", "unix:k", "v") == "OK"
    with Redis.from_url(redis_unix_server.url(db=1)) as tcp1:
        assert tcp1.execute_command("GET", "unix:k") == b"v"
    with Redis.from_url(redis_unix_server.url(db=0)) as tcp0:
        assert tcp0.execute_command("GET", "unix:k") is None


def test_tls_with_the_ca(redis_tls_server):
    url = redis_tls_server.url()
    assert url.startswith("rediss://127.0.0.1:")
    with Redis.from_url(url, ssl_ca_file=redis_tls_server.tls.ca_cert) as redis:
        assert redis.execute_command("PING") == "PONG"
        assert redis.execute_command("SET", "tls:k", "v") == "OK"
        assert redis.execute_command("GET", "tls:k") == b"v"


def test_tls_unverified_server_fails_by_default(redis_tls_server):
    redis = Redis.from_url(
        redis_tls_server.url(), retries=0, connect_timeout_ms=2000, socket_timeout_ms=2000
    )
    try:
        with pytest.raises(BackendUnavailable):
            redis.execute_command("PING")
    finally:
        redis.close()


# -- threads ------------------------------------------------------------------------


def test_eight_threads_on_one_client(client):
    errors = []
    barrier = threading.Barrier(8)
    run = uuid.uuid4().hex

    def work(n: int) -> None:
        try:
            barrier.wait(10)
            for i in range(500):
                key, value = f"th:{n}:{i}", f"{run}:{n}:{i}".encode()
                reply = client.execute_command("SET", key, value)
                assert reply == "OK", (key, reply)
                reply = client.execute_command("GET", key)
                assert reply == value, (key, reply)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors[:3]
    assert client.execute_command("DBSIZE") == 8 * 500


# -- failures: restarts, kills, silence, cut and garbled replies ---------------------------


def test_server_restarted_mid_use(redis_restartable_server):
    server = redis_restartable_server
    with Redis.from_url(server.url()) as redis:
        assert redis.execute_command("SET", "k", "before") == "OK"
        assert redis.execute_command("GET", "k") == b"before"
        server.restart()
        assert redis.execute_command("GET", "k") is None  # no persistence: a new, empty server
        assert redis.execute_command("SET", "k", "after") == "OK"
        assert redis.execute_command("GET", "k") == b"after"


def test_write_after_restart_is_not_repeated(redis_restartable_server):
    server = redis_restartable_server
    with Redis.from_url(server.url()) as redis:
        assert redis.execute_command("PING") == "PONG"
        server.restart()
        try:
            assert redis.execute_command("INCR", "once") == 1
        except BackendError:
            pass  # the write may have been lost; it must not have run twice
        assert redis.execute_command("GET", "once") in (None, b"1")


def test_connections_killed_by_the_server(client):
    for _ in range(3):
        assert client.execute_command("PING") == "PONG"
    client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
    assert client.execute_command("GET", "nothing") is None
    assert client.execute_command("PING") == "PONG"


def test_silent_server_times_out(fake_redis):
    fake = fake_redis(accept_only=True)
    redis = Redis.from_url(fake.url(), socket_timeout_ms=300, connect_timeout_ms=300, retries=0)
    try:
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            redis.execute_command("GET", "k")
        assert time.monotonic() - started < 2
    finally:
        redis.close()


def test_silent_after_handshake_times_out_and_never_desyncs(fake_redis):
    def answer(command, index):
        if command[0].upper() == b"GET":
            if index == 0:
                time.sleep(0.8)  # too late: the client gave up on this connection
            key = command[1]
            return b"$%d\r\n%s\r\n" % (len(key), key)
        return NotImplemented

    fake = fake_redis(answer)
    redis = Redis.from_url(fake.url(), socket_timeout_ms=300, retries=0)
    try:
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            redis.execute_command("GET", "late")
        assert time.monotonic() - started < 2
        assert redis.execute_command("GET", "fresh") == b"fresh"  # not b"late"
        assert redis.execute_command("GET", "again") == b"again"
        assert fake.connections == 2
    finally:
        redis.close()


def test_never_answering_command_with_retries_is_bounded(fake_redis):
    def answer(command, index):
        if command[0].upper() == b"INCR":
            return HOLD
        return NotImplemented

    fake = fake_redis(answer)
    redis = Redis.from_url(fake.url(), socket_timeout_ms=300)
    try:
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            redis.execute_command("INCR", "k")
        assert time.monotonic() - started < 2
        incrs = [c for _, c in fake.commands if c[0].upper() == b"INCR"]
        assert len(incrs) == 1  # a write that may have run is not repeated
    finally:
        redis.close()


def test_reply_cut_in_half(fake_redis):
    def answer(command, index):
        if command[0].upper() == b"GET":
            if index == 0:
                return SendThenClose(b"$10\r\nhel")
            return b"$5\r\nhello\r\n"
        return NotImplemented

    fake = fake_redis(answer)
    redis = Redis.from_url(fake.url(), socket_timeout_ms=2000, retries=0)
    try:
        started = time.monotonic()
        with pytest.raises((BackendUnavailable, ProtocolError)):
            redis.execute_command("GET", "k")
        assert time.monotonic() - started < 2
        assert redis.execute_command("GET", "k") == b"hello"
        assert fake.connections == 2
    finally:
        redis.close()


def test_garbage_reply_is_a_protocol_error(fake_redis):
    def answer(command, index):
        if command[0].upper() == b"GET":
            if index == 0:
                return b"@this is not RESP\r\n"
            return b"$2\r\nok\r\n"
        return NotImplemented

    fake = fake_redis(answer)
    redis = Redis.from_url(fake.url(), socket_timeout_ms=2000, retries=0)
    try:
        with pytest.raises(ProtocolError):
            redis.execute_command("GET", "k")
        wait_until(lambda: 0 in fake.closed_by_client, what="the connection to be dropped")
        assert redis.execute_command("GET", "k") == b"ok"
        assert fake.connections == 2
    finally:
        redis.close()


def _close_on_first(name: bytes):
    """A fake that closes connection 0 on receiving ``name`` (it may have run, unanswered)."""

    def answer(command, index):
        if command[0].upper() == name:
            if index == 0:
                return None
            return b":1\r\n" if name == b"INCR" else b"$3\r\nval\r\n"
        return NotImplemented

    return answer


def test_lost_connection_after_a_write_is_not_repeated(fake_redis):
    fake = fake_redis(_close_on_first(b"INCR"))
    redis = Redis.from_url(fake.url(), socket_timeout_ms=2000)
    try:
        with pytest.raises(BackendUnavailable):
            redis.execute_command("INCR", "k")
        incrs = [c for _, c in fake.commands if c[0].upper() == b"INCR"]
        assert len(incrs) == 1
    finally:
        redis.close()


def test_lost_connection_during_a_read_is_retried(fake_redis):
    fake = fake_redis(_close_on_first(b"GET"))
    redis = Redis.from_url(fake.url(), socket_timeout_ms=2000)
    try:
        assert redis.execute_command("GET", "k") == b"val"
        assert fake.connections == 2
    finally:
        redis.close()
