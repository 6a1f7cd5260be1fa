"""Fixtures shared by every test of jexkv."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import pytest

from tests.helpers import StartProcess, ended_at_teardown, kill_all, python_env
from tests.redis_cluster import RedisCluster
from tests.redis_sentinel import RedisSentinelSet
from tests.redis_server import AnyRedis, ExternalRedis, FakeRedis, RedisServer


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
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelSet]:
    """A primary, its replica and three sentinels (``mymaster``, quorum 2) on 127.0.0.1."""
    with RedisSentinelSet() as sentinels:
        yield sentinels


@pytest.fixture
def fake_redis() -> Iterator[Callable[..., FakeRedis]]:
    """Make FakeRedis servers (closed at teardown, which fails the test if one of them
    failed): ``fake_redis(answer, accept_only=...)``."""
    fakes = yield from ended_at_teardown(FakeRedis, FakeRedis.close)
    for fake in fakes:
        assert not fake.errors, f"the fake server failed: {fake.errors!r}"


@pytest.fixture
def start_process(tmp_path: pathlib.Path) -> Iterator[StartProcess]:
    """``start_process(args, err=NAME, env=None, stdout=DEVNULL, stdin=None)``: run
    ``python ARGS`` in tmp_path, with this checkout's jexkv importable (``env`` defaults to
    helpers.python_env()) and its stderr written to the file tmp_path/NAME. Every process
    still running when the test ends, passed or failed, is killed."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        args: Sequence[str],
        *,
        err: str,
        env: dict[str, str] | None = None,
        stdout: Any = subprocess.DEVNULL,
        stdin: Any = None,
    ) -> subprocess.Popen[bytes]:
        with open(tmp_path / err, "wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, *args],
                env=env if env is not None else python_env(),
                cwd=str(tmp_path),
                stdin=stdin,
                stdout=stdout,
                stderr=err_file,
            )
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        kill_all(procs)
