"""socket_timeout_ms and connect_timeout_ms bound the whole call: a timeout is never
retried, so a command against a frozen server raises BackendTimeout after at most
connect_timeout + socket_timeout, and the message states the timeout that ran out."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

import jexkv
from jexkv.resp import Redis
from tests.redis_server import RedisServer

CONNECT_S = 0.5
SOCKET_S = 1.0
BOUND_S = CONNECT_S + SOCKET_S


@pytest.fixture
def frozen_server() -> Iterator[RedisServer]:
    """A redis-server of this test alone, so that SIGSTOP freezes nobody else's."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.cleanup()


def _client(server: RedisServer) -> Redis:
    return Redis(
        server.host, server.port, connect_timeout=CONNECT_S, socket_timeout=SOCKET_S, retries=3
    )


def _timed(fn: object) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(jexkv.BackendTimeout) as excinfo:
        fn()  # type: ignore[operator]
    return time.monotonic() - started, str(excinfo.value)


def _freeze(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def test_a_fresh_connection_to_a_frozen_server_times_out_once(
    frozen_server: RedisServer,
) -> None:
    _freeze(frozen_server)
    with _client(frozen_server) as r:
        elapsed, message = _timed(lambda: r.execute_command("GET", "k"))
    assert elapsed >= 0.9 * SOCKET_S, f"gave up after {elapsed:.2f} s"
    assert elapsed < 2 * BOUND_S, f"took {elapsed:.2f} s (retried after a timeout?)"
    assert f"within {SOCKET_S:g} s" in message and "socket_timeout_ms" in message, message


def test_a_pooled_connection_to_a_frozen_server_times_out_once(
    frozen_server: RedisServer,
) -> None:
    with _client(frozen_server) as r:
        r.execute_command("SET", "k", "v")
        _freeze(frozen_server)
        for command in (("GET", "k"), ("SET", "k", "w")):
            elapsed, message = _timed(lambda c=command: r.execute_command(*c))
            assert 0.9 * SOCKET_S <= elapsed < 2 * BOUND_S, f"{command}: {elapsed:.2f} s"
            assert "socket_timeout_ms" in message, message


def test_kv_get_against_a_frozen_server_is_bounded(frozen_server: RedisServer) -> None:
    url = frozen_server.url() + "?connect_timeout_ms=500&socket_timeout_ms=1000"
    with jexkv.open_kv(url) as kv:
        kv.set("k", 1)
        _freeze(frozen_server)
        elapsed, _ = _timed(lambda: kv.get("k"))
        assert elapsed < 2 * BOUND_S, f"took {elapsed:.2f} s"
        os.kill(frozen_server.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        assert kv.get("k") == 1  # and the store works again by itself
