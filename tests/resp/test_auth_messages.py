"""A server that needs a password says so, on both handshakes; a wrong password says so
too, and never appears in the message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import jexkv
from jexkv.resp import Redis
from jexkv.resp.connection import Connection
from tests.redis_server import RedisServer

PASSWORD = "s3cret-Pa55word"
WRONG = "not-the-Right-one"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    server = RedisServer(password=PASSWORD)
    try:
        server.start()
        admin = Connection(host=server.host, port=server.port, password=PASSWORD)
        admin.connect()
        assert admin.execute("ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all") in (
            "OK",
            b"OK",
        )
        admin.close()
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("protocol", [3, 2])
def test_no_password_says_the_server_requires_one(
    locked_server: RedisServer, protocol: int
) -> None:
    r = Redis(locked_server.host, locked_server.port)
    r._settings["protocol"] = protocol  # the RESP2 handshake sends no HELLO
    with r, pytest.raises(jexkv.BackendError) as excinfo:
        r.execute_command("GET", "k")
    message = str(excinfo.value)
    assert "the server requires a password" in message, message
    assert "HELLO" not in message, message


@pytest.mark.parametrize("protocol", [3, 2])
@pytest.mark.parametrize("username", [None, "alice"])
def test_a_wrong_password_says_so_and_hides_it(
    locked_server: RedisServer, protocol: int, username: str | None
) -> None:
    r = Redis(locked_server.host, locked_server.port, username=username, password=WRONG)
    r._settings["protocol"] = protocol
    with r, pytest.raises(jexkv.BackendUnavailable) as excinfo:
        r.execute_command("GET", "k")
    message = str(excinfo.value)
    assert "wrong username or password" in message, message
    assert WRONG not in message and WRONG not in repr(excinfo.value)


def test_open_kv_without_the_password_says_so(locked_server: RedisServer) -> None:
    url = f"redis://{locked_server.host}:{locked_server.port}/0"
    with pytest.raises(jexkv.BackendError) as excinfo:
        with jexkv.open_kv(url) as kv:
            kv.get("k")
    assert "the server requires a password" in str(excinfo.value)
