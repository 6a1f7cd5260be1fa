"""Fixtures shared by every test of jexkv."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.redis_cluster import RedisCluster
from tests.redis_sentinel import RedisSentinelSet
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


@pytest.fixture
def own_redis_server(redis_server) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for a test that stops it, freezes it or changes
    its users; ``redis_server`` decides whether a missing redis-server skips or fails."""
    server = _started(RedisServer())
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """Three cluster primaries on 127.0.0.1 covering every slot, no replicas."""
    cluster = RedisCluster()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelSet]:
    """A primary, its replica and three sentinels (``mymaster``, quorum 2) on 127.0.0.1."""
    sentinels = RedisSentinelSet()
    try:
        yield sentinels
    finally:
        sentinels.cleanup()
