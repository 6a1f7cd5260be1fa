"""Fixtures of the BullMQ interop tests.

``bullmq_node_modules`` (session) installs the BullMQ and ioredis pinned by
tests/interop/node/package-lock.json into a cache folder (see npm_cache.py). Each test gets
its own queue name on database ``INTEROP_DB`` of the session's ``redis_server``; ``side``
runs the Node scripts on that queue (see processes.py; ``open_side(prefix)``: under another
prefix), ``open_jexkv(**options)`` opens a jexkv TaskQueue on the same database and prefix,
and ``raw`` is a plain Redis client for reading BullMQ's keys directly.
Everything a test opened or started is closed at teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import jexkv
from jexkv.resp import Redis
from tests.helpers import ended_at_teardown
from tests.interop.npm_cache import NodeUnavailable, node_modules_dir
from tests.interop.processes import Side
from tests.redis_server import unavailable

INTEROP_DB = 13
PREFIX = "bull"
# Teardown closes every jexkv queue with this timeout (ms): a hung handler cannot hang the run.
CLOSE_TIMEOUT_MS = 2000


@pytest.fixture(scope="session")
def bullmq_node_modules() -> Path:
    try:
        return node_modules_dir()
    except NodeUnavailable as exc:
        unavailable(str(exc))  # a skip, or a failure under JEXKV_REQUIRE_REDIS=1
        raise


@pytest.fixture
def interop_url(redis_server) -> str:
    return redis_server.url(db=INTEROP_DB)


@pytest.fixture
def queue_name() -> str:
    return "interop-" + uuid.uuid4().hex[:12]


@pytest.fixture
def open_side(bullmq_node_modules, interop_url, queue_name) -> Iterator[Callable[[str], Side]]:
    """``factory(prefix)``: the Node scripts on this test's queue under that key prefix."""
    yield from ended_at_teardown(
        lambda prefix: Side(bullmq_node_modules, interop_url, queue_name, prefix), Side.close
    )


@pytest.fixture
def side(open_side) -> Side:
    """The Node scripts on this test's queue (prefix ``bull``)."""
    return open_side(PREFIX)


@pytest.fixture
def open_jexkv(interop_url) -> Iterator[Callable[..., jexkv.TaskQueue]]:
    """``factory(**options)``: a jexkv TaskQueue on this test's database (prefix ``bull``)."""
    yield from ended_at_teardown(
        lambda **options: jexkv.open_queue(interop_url, **{"prefix": PREFIX, **options}),
        lambda queue: queue.close(timeout_ms=CLOSE_TIMEOUT_MS),
    )


@pytest.fixture
def raw(interop_url) -> Iterator[Redis]:
    """A plain client on this test's database, to read BullMQ's keys as they are."""
    with Redis.from_url(interop_url) as client:
        yield client


def job_hash(raw: Redis, queue: str, job_id: str) -> dict[str, str]:
    """The job's hash ``<prefix>:<queue>:<id>`` as text."""
    fields = raw.execute_command("HGETALL", f"{PREFIX}:{queue}:{job_id}")
    if isinstance(fields, dict):
        items = list(fields.items())
    else:
        items = list(zip(fields[::2], fields[1::2]))
    return {_text(k): _text(v) for k, v in items}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
