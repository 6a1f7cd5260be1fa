"""Run every contract test on every adapter.

To add an adapter, add one entry to ``ADAPTERS``: an id and a function
``(tmp_path, unique_name) -> URL``. Every store a test opens through these
fixtures lives on that one backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import jexkv

ADAPTERS: dict[str, Callable[[Path, str], str]] = {
    "memory": lambda tmp_path, name: f"memory://{name}",
    "sqlite": lambda tmp_path, name: f"sqlite:///{tmp_path / name}.db",
}
# Adapters on a server: (the id, the test's URL given the server fixture's value).
SERVER_ADAPTERS: dict[str, Callable[[object], str]] = {
    "redis": lambda server: server.url(db=9),  # type: ignore[attr-defined]
}
# Adapters that read the server's clock: freezegun cannot move their time.
SERVER_CLOCK = {"redis"}
KV_ADAPTERS = [*ADAPTERS, *SERVER_ADAPTERS]
QUEUE_ADAPTERS = [*ADAPTERS, *SERVER_ADAPTERS]


def _url(request, tmp_path, unique_name) -> str:
    if request.param in SERVER_CLOCK and request.node.get_closest_marker("frozen_clock"):
        pytest.skip("this adapter counts time on its server, which freezegun cannot move")
    if request.param in ADAPTERS:
        return ADAPTERS[request.param](tmp_path, unique_name)
    url = SERVER_ADAPTERS[request.param](request.getfixturevalue("redis_server"))
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")
    return url


@pytest.fixture(params=KV_ADAPTERS, ids=KV_ADAPTERS)
def kv_url(request, tmp_path, unique_name) -> str:
    """The URL of this test's KV backend (not opened); a server's database starts empty."""
    return _url(request, tmp_path, unique_name)


@pytest.fixture(params=QUEUE_ADAPTERS, ids=QUEUE_ADAPTERS)
def queue_url(request, tmp_path, unique_name) -> str:
    """The URL of this test's queue backend (not opened)."""
    return _url(request, tmp_path, unique_name)


@pytest.fixture
def open_kv_on_same_backend(kv_url):
    """``factory(**options)``: another store on this test's backend."""
    stores = []

    def factory(**options):
        store = jexkv.open_kv(kv_url, **options)
        stores.append(store)
        return store

    yield factory
    for store in reversed(stores):
        store.close()


@pytest.fixture
def kv(open_kv_on_same_backend):
    """A store with default options on this test's backend."""
    return open_kv_on_same_backend()


# Teardown closes every queue with this timeout (ms), so a test whose handler is still
# blocked cannot hang the run.
QUEUE_CLOSE_TIMEOUT_MS = 2000


@pytest.fixture
def open_queue_on_same_backend(queue_url):
    """``factory(**options)``: a TaskQueue on this test's backend (the URL of ``queue_url``)."""
    queues = []

    def factory(**options):
        queue = jexkv.open_queue(queue_url, **options)
        queues.append(queue)
        return queue

    yield factory
    for queue in reversed(queues):
        queue.close(timeout_ms=QUEUE_CLOSE_TIMEOUT_MS)


@pytest.fixture
def q(open_queue_on_same_backend):
    """A TaskQueue with default options on this test's backend."""
    return open_queue_on_same_backend()
