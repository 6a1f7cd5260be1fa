"""Connection and ConnectionPool against real redis-server processes (and a fake one)."""

from __future__ import annotations

import os
import select
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest

from jexkv.errors import BackendTimeout, BackendUnavailable, ClosedError
from jexkv.resp.connection import Connection
from jexkv.resp.pool import ConnectionPool
from jexkv.resp.protocol import pack_command
from tests.redis_server import LOCALHOST, free_port
from tests.resp.conftest import ACL_PASSWORD, ACL_USER, AUTH_PASSWORD


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def connected(server=None, **options) -> Iterator[Connection]:
    """A Connection made with ``options`` (on top of ``server.connection_kwargs()`` when a
    server is given) and connected; it is closed at the end of the block."""
    if server is not None:
        options = {**server.connection_kwargs(), **options}
    conn = Connection(**options)
    conn.connect()
    try:
        yield conn
    finally:
        conn.close()


def client_id(conn: Connection) -> int:
    value = conn.execute("CLIENT", "ID")
    assert isinstance(value, int)
    return value


def client_info(conn: Connection) -> str:
    return _s(conn.execute("CLIENT", "INFO"))


def kill(server, victim_id: int) -> None:
    """CLIENT KILL ID from another connection; waits until the victim is gone."""
    with connected(server) as killer:
        assert killer.execute("CLIENT", "KILL", "ID", victim_id) == 1
        deadline = time.monotonic() + 5
        while f"id={victim_id} " in _s(killer.execute("CLIENT", "LIST")):
            assert time.monotonic() < deadline, "the killed client is still listed"
            time.sleep(0.01)


# -- handshake ---------------------------------------------------------------------------


def test_handshake_speaks_resp3(redis_server):
    with connected(redis_server) as conn:
        assert conn.is_connected
        assert conn.protocol_version == 3
        assert conn.pid == os.getpid()
        assert conn.execute("PING") == "PONG"
        assert conn.execute("SET", "conn:k", "v") == "OK"
        assert conn.execute("GET", "conn:k") == b"v"
        assert "resp=3" in client_info(conn)
        conn.execute("DEL", "conn:k")
    assert not conn.is_connected


def test_protocol_2_when_asked(redis_server):
    with connected(redis_server, protocol=2) as conn:
        assert conn.protocol_version == 2
        assert conn.execute("PING") == "PONG"
        assert "resp=2" in client_info(conn)


def test_last_used_moves_with_io(redis_server):
    with connected(redis_server) as conn:
        before = conn.last_used
        time.sleep(0.01)
        conn.execute("PING")
        assert conn.last_used > before


def test_select_db_and_client_name(redis_server):
    with connected(redis_server, db=3, client_name="jexkv-conn-test") as conn:
        info = client_info(conn)
        assert " db=3 " in f" {info} "
        assert " name=jexkv-conn-test " in f" {info} "


def _hello_unknown(command, index):
    if command[0].upper() == b"HELLO":
        return b"-ERR unknown command 'HELLO', with args beginning with: '3' \r\n"
    return NotImplemented


def test_hello_fallback_to_resp2_then_auth(fake_redis):
    fake = fake_redis(_hello_unknown)
    with connected(
        host=fake.host,
        port=fake.port,
        password="fallback-secret",
        db=2,
        client_name="jexkv-old",
        socket_timeout=5,
    ) as conn:
        assert conn.protocol_version == 2
        assert conn.execute("PING") == "PONG"
    sent = fake.commands_of(0)
    names = [c[0].upper() for c in sent]
    assert names[0] == b"HELLO"
    assert [b"AUTH", b"fallback-secret"] in [[c[0].upper(), *c[1:]] for c in sent]
    assert [b"SELECT", b"2"] in sent
    assert [b"CLIENT", b"SETNAME", b"jexkv-old"] in [[c[0].upper(), *c[1:]] for c in sent]
    assert names.index(b"AUTH") < names.index(b"SELECT")
    assert names[-1] == b"PING"


def test_hello_fallback_auth_with_username(fake_redis):
    fake = fake_redis(_hello_unknown)
    with connected(host=fake.host, port=fake.port, username="bob", password="bob-secret") as conn:
        assert conn.protocol_version == 2
        assert conn.execute("PING") == "PONG"
    assert [b"AUTH", b"bob", b"bob-secret"] in fake.commands_of(0)


def test_hello_fallback_wrong_password_hides_it(fake_redis):
    def answer(command, index):
        if command[0].upper() == b"AUTH":
            return b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        return _hello_unknown(command, index)

    fake = fake_redis(answer)
    conn = Connection(host=fake.host, port=fake.port, password="never-shown-pw")
    with pytest.raises(BackendUnavailable) as info:
        conn.connect()
    assert "never-shown-pw" not in str(info.value)
    assert "never-shown-pw" not in repr(info.value)
    assert not conn.is_connected


def test_auth_with_password(redis_auth_server):
    with connected(redis_auth_server) as conn:
        assert conn.execute("PING") == "PONG"
        assert _s(conn.execute("ACL", "WHOAMI")) == "default"


def test_auth_acl_user(redis_auth_server):
    with connected(redis_auth_server, username=ACL_USER, password=ACL_PASSWORD) as conn:
        assert _s(conn.execute("ACL", "WHOAMI")) == ACL_USER


def test_wrong_password_is_unavailable_and_hidden(redis_auth_server):
    conn = Connection(host=redis_auth_server.host, port=redis_auth_server.port, password="bad-pw-1")
    with pytest.raises(BackendUnavailable) as info:
        conn.connect()
    for text in (str(info.value), repr(info.value), repr(conn)):
        assert "bad-pw-1" not in text
        assert AUTH_PASSWORD not in text
    assert not conn.is_connected


def test_repr_never_shows_the_password(redis_auth_server):
    conn = Connection(
        host=redis_auth_server.host,
        port=redis_auth_server.port,
        username=ACL_USER,
        password=ACL_PASSWORD,
    )
    assert ACL_PASSWORD not in repr(conn)
    conn.connect()
    try:
        assert ACL_PASSWORD not in repr(conn)
        assert ACL_PASSWORD not in str(conn)
    finally:
        conn.close()


def test_unix_socket(redis_unix_server):
    with connected(path=redis_unix_server.unix_path, db=1) as conn:
        assert conn.execute("PING") == "PONG"
        assert " db=1 " in f" {client_info(conn)} "


def test_tls_verified_with_the_ca(redis_tls_server):
    context = redis_tls_server.tls.client_context()
    with connected(
        host=redis_tls_server.host,
        port=redis_tls_server.port,
        ssl_context=context,
        server_hostname="localhost",
    ) as conn:
        assert conn.execute("PING") == "PONG"


def test_tls_unverified_certificate_fails(redis_tls_server):
    conn = Connection(
        host=redis_tls_server.host,
        port=redis_tls_server.port,
        ssl_context=ssl.create_default_context(),  # the system CAs: not ours
        server_hostname="localhost",
        connect_timeout=2,
        socket_timeout=2,
    )
    with pytest.raises(BackendUnavailable):
        conn.connect()
    assert not conn.is_connected


# -- errors and timeouts ---------------------------------------------------------------


def test_connection_refused_is_unavailable():
    conn = Connection(host=LOCALHOST, port=free_port(), connect_timeout=2)
    with pytest.raises(BackendUnavailable):
        conn.connect()
    assert not conn.is_connected


def test_read_timeout_closes_the_connection(redis_server):
    with connected(redis_server, socket_timeout=5) as conn:
        conn.send(pack_command("BLPOP", "conn:never", "3"))
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            conn.read_reply(timeout=0.2)
        assert time.monotonic() - started < 2.5
        assert not conn.is_connected  # a half-used socket is never reused


def test_read_reply_timeout_extends_for_blocking_commands(redis_server):
    with connected(redis_server, socket_timeout=0.1) as conn:
        conn.send(pack_command("BLPOP", "conn:never", "0.3"))
        assert conn.read_reply(timeout=5) is None
        assert conn.is_connected
        assert conn.execute("PING") == "PONG"


def test_error_replies_are_values(redis_server):
    with connected(redis_server) as conn:
        reply = conn.execute("NOSUCHCOMMAND-JEXKV")
        assert reply.code == "ERR"
        assert conn.is_connected
        assert conn.execute("PING") == "PONG"


def test_killed_by_the_server_is_unavailable(redis_server):
    with connected(redis_server) as conn:
        kill(redis_server, client_id(conn))
        with pytest.raises(BackendUnavailable):
            conn.execute("PING")
        assert not conn.is_connected


def test_garbage_is_a_protocol_error_and_closes(fake_redis):
    from jexkv.errors import ProtocolError

    def answer(command, index):
        if command[0].upper() == b"GET":
            return b"@garbage@\r\n"
        return NotImplemented

    fake = fake_redis(answer)
    conn = Connection(host=fake.host, port=fake.port, socket_timeout=2)
    conn.connect()
    with pytest.raises(ProtocolError):
        conn.execute("GET", "k")
    assert not conn.is_connected
    deadline = time.monotonic() + 5
    while 0 not in fake.closed_by_client:
        assert time.monotonic() < deadline, "the connection was not closed"
        time.sleep(0.01)


# -- the pool -------------------------------------------------------------------------


def make_pool(server, **kwargs) -> ConnectionPool:
    options = server.connection_kwargs()
    return ConnectionPool(lambda: Connection(**options), **kwargs)


def test_pool_is_lifo(redis_server):
    with closing(make_pool(redis_server)) as pool:
        a = pool.acquire()
        b = pool.acquire()
        assert a is not b
        assert a.is_connected and b.is_connected
        pool.release(a)
        pool.release(b)
        assert pool.acquire() is b
        assert pool.acquire() is a


def test_pool_timeout_when_exhausted(redis_server):
    with closing(make_pool(redis_server, max_connections=2, timeout=0.3)) as pool:
        a = pool.acquire()
        pool.acquire()
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            pool.acquire()
        assert time.monotonic() - started < 2.5
        pool.release(a)
        assert pool.acquire() is a


def test_pool_wakes_a_waiter_on_release(redis_server):
    with closing(make_pool(redis_server, max_connections=1, timeout=5)) as pool:
        a = pool.acquire()
        timer = threading.Timer(0.1, pool.release, args=(a,))
        timer.start()
        try:
            assert pool.acquire() is a
        finally:
            timer.join(5)


def test_pool_drops_closed_and_discarded_connections(redis_server):
    with closing(make_pool(redis_server, max_connections=1, timeout=0.5)) as pool:
        a = pool.acquire()
        a.close()
        pool.release(a)  # a closed one is dropped, its slot freed
        b = pool.acquire()
        assert b is not a
        assert b.execute("PING") == "PONG"
        pool.discard(b)
        assert not b.is_connected
        c = pool.acquire()
        assert c is not b
        assert c.execute("PING") == "PONG"
        pool.release(c)


def test_pool_connection_context(redis_server):
    with closing(make_pool(redis_server, max_connections=1, timeout=0.5)) as pool:
        with pool.connection() as conn:
            assert conn.execute("PING") == "PONG"
        with pool.connection() as again:
            assert again is conn  # released on success
        with pytest.raises(RuntimeError):
            with pool.connection() as broken:
                raise RuntimeError("boom")
        assert not broken.is_connected  # discarded on an exception
        with pool.connection() as fresh:
            assert fresh is not broken
            assert fresh.execute("PING") == "PONG"


def test_pool_health_check_drops_a_killed_connection(redis_server, monkeypatch):
    """The server killed an idle connection and the news has not come yet (the FIN still on
    its way, or lost): has_unread() sees nothing, so only the PING of a connection idle
    longer than health_check_interval finds it dead; it is dropped, never lent."""
    with closing(make_pool(redis_server, health_check_interval=0.05)) as pool:
        conn = pool.acquire()
        victim = client_id(conn)
        pool.release(conn)
        kill(redis_server, victim)
        monkeypatch.setattr(Connection, "has_unread", lambda self: False)
        time.sleep(0.2)  # idle longer than the health check interval
        again = pool.acquire()
        assert again is not conn
        assert not conn.is_connected  # dropped: closed, its slot freed
        assert again.execute("PING") == "PONG"
        assert client_id(again) != victim
        pool.release(again)


def test_pool_close(redis_server):
    pool = make_pool(redis_server)
    conn = pool.acquire()
    pool.release(conn)
    pool.close()
    assert not conn.is_connected
    with pytest.raises(ClosedError):
        pool.acquire()


def test_pool_threads_share_a_bounded_pool(redis_server):
    pool = make_pool(redis_server, max_connections=3, timeout=10)
    seen = set()
    errors = []

    def work() -> None:
        try:
            for _ in range(50):
                with pool.connection() as conn:
                    seen.add(id(conn))
                    assert conn.execute("PING") == "PONG"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors
        assert len(seen) <= 3
    finally:
        pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")
def test_pool_fork_safety(redis_server):
    with closing(make_pool(redis_server)) as pool:
        parent_conn = pool.acquire()
        parent_id = client_id(parent_conn)
        pool.release(parent_conn)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.close(read_end)
                conn = pool.acquire()
                child_id = client_id(conn)
                ok = conn is not parent_conn and child_id != parent_id and conn.pid == os.getpid()
                pool.release(conn)
                os.write(write_end, f"{child_id}\n".encode())
                code = 0 if ok else 2
            except BaseException:
                code = 3
            finally:
                os._exit(code)
        os.close(write_end)
        deadline = time.monotonic() + 15
        status = None
        while status is None:
            done, status_code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_code
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child did not finish")
            time.sleep(0.01)
        ready, _, _ = select.select([read_end], [], [], 1)
        child_output = os.read(read_end, 100) if ready else b""
        os.close(read_end)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, child_output)
        # The parent's pool is untouched: the same connection, still the same server client.
        again = pool.acquire()
        assert again is parent_conn
        assert again.execute("PING") == "PONG"
        assert client_id(again) == parent_id
        assert int(child_output) != parent_id
        pool.release(again)
