"""Fixtures shared by every test of jexkv."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.redis_server import AnyRedis, ExternalRedis, RedisServer


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (for memory:// spaces, files, namespaces)."""
    return "t" + uuid.uuid4().hex[:16]


def _started(server: RedisServer) -> RedisServer:
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[AnyRedis]:
    """The plain server: JEXKV_REDIS_URL when set, else a redis-server started here."""
    url = os.environ.get("JEXKV_REDIS_URL")
    if url:
        yield ExternalRedis(url)
        return
    server = _started(RedisServer())
    yield server
    server.cleanup()
