"""Redis servers for the client tests (see tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _started  # the plain server fixture lives there (contract tests too)
from tests.redis_server import AnyRedis, RedisServer, TlsUnavailable

AUTH_PASSWORD = "jexkv-Requirepass-7c1f"
ACL_USER = "alice"
ACL_PASSWORD = "jexkv-Alice-Pass-93be"


@pytest.fixture(scope="session")
def redis_unix_server() -> Iterator[RedisServer]:
    """A server started here listening on TCP and on a unix socket."""
    server = _started(RedisServer(unix_socket=True))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_auth_server() -> Iterator[RedisServer]:
    """A server with requirepass and the ACL user ``alice``."""
    user = [ACL_USER, "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all"]
    server = _started(RedisServer(password=AUTH_PASSWORD, extra_args=["--user", *user]))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_tls_server() -> Iterator[RedisServer]:
    """A TLS-only server with a certificate made here for 127.0.0.1 and localhost."""
    try:
        server = RedisServer(tls=True)
    except TlsUnavailable as exc:
        pytest.skip(f"TLS cannot be tested: {exc}")
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        pytest.skip(f"TLS cannot be tested: this redis-server does not start with TLS: {exc}")
    yield server
    server.cleanup()


@pytest.fixture
def redis_restartable_server() -> Iterator[RedisServer]:
    """A server of its own for one test, which may restart it."""
    server = _started(RedisServer())
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: AnyRedis) -> str:
    return redis_server.url()


@pytest.fixture
def client(redis_url: str):
    """A client of the plain server, whose every database was flushed first."""
    from jexkv.resp.client import Redis

    redis = Redis.from_url(redis_url)
    redis.execute_command("FLUSHALL")
    yield redis
    redis.close()
