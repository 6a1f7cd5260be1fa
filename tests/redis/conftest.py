"""Fixtures of the tests/redis modules: a database of each module's own (its ``DB``),
emptied before each test, and a raw client on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jexkv.resp import Redis


@pytest.fixture
def url(redis_server, request) -> str:
    address = redis_server.url(db=request.module.DB)
    with Redis.from_url(address) as client:
        client.execute_command("FLUSHDB")
    return address


@pytest.fixture
def redis(url) -> Iterator[Redis]:
    with Redis.from_url(url) as client:
        yield client
