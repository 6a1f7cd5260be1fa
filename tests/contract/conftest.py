"""Run every contract test on every adapter.

To add an adapter, add one entry to ``ADAPTERS``: an id and a function
``(tmp_path, unique_name) -> URL``. Every store a test opens through these
fixtures lives on that one backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import jexkv
import jexkv.aio
from tests.aio_facade import LoopThread, SyncFacade
from tests.helpers import ended_at_teardown

ADAPTERS: dict[str, Callable[[Path, str], str]] = {
    "memory": lambda tmp_path, name: f"memory://{name}",
    "sqlite": lambda tmp_path, name: f"sqlite:///{tmp_path / name}.db",
}
# Adapters on servers: id -> (the session fixture that runs them, the test's URL for its
# value, and how to empty them before each test).


def _flushdb(url: str) -> None:
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")


SERVER_ADAPTERS: dict[str, tuple[str, Callable[[Any], str], Callable[[Any, str], None]]] = {
    "redis": ("redis_server", lambda server: server.url(db=9), lambda server, url: _flushdb(url)),
    # A queue's keys must share one slot on a cluster: the hash tag goes in the prefix.
    "redis-cluster": (
        "redis_cluster",
        lambda cluster: cluster.url(),
        lambda cluster, url: cluster.reset(),
    ),
    "redis-sentinel": (
        "redis_sentinel",
        lambda sentinels: sentinels.url(db=9),
        lambda sentinels, url: (sentinels.heal(), sentinels.flushall()),
    ),
}
# Adapters that read the server's clock: freezegun cannot move their time.
SERVER_CLOCK = set(SERVER_ADAPTERS)
KV_ADAPTERS = [*ADAPTERS, *SERVER_ADAPTERS]
QUEUE_ADAPTERS = [*ADAPTERS, *SERVER_ADAPTERS]
# Options a queue needs on an adapter (on top of the test's own).
QUEUE_URL_OPTIONS = {"redis-cluster": "prefix=%7Bbull%7D"}


def _url(request, tmp_path, unique_name) -> str:
    if request.param in SERVER_CLOCK and request.node.get_closest_marker("frozen_clock"):
        pytest.skip("this adapter counts time on its server, which freezegun cannot move")
    if request.param in ADAPTERS:
        return ADAPTERS[request.param](tmp_path, unique_name)
    fixture, make_url, empty = SERVER_ADAPTERS[request.param]
    servers = request.getfixturevalue(fixture)
    url = make_url(servers)
    empty(servers, url)
    return url


@pytest.fixture(params=KV_ADAPTERS, ids=KV_ADAPTERS)
def kv_url(request, tmp_path, unique_name) -> str:
    """The URL of this test's KV backend (not opened); a server's database starts empty."""
    return _url(request, tmp_path, unique_name)


@pytest.fixture(params=QUEUE_ADAPTERS, ids=QUEUE_ADAPTERS)
def queue_url(request, tmp_path, unique_name) -> str:
    """The URL of this test's queue backend (not opened)."""
    url = _url(request, tmp_path, unique_name)
    extra = QUEUE_URL_OPTIONS.get(request.param)
    if extra:
        url += ("&" if "?" in url else "?") + extra
    return url


# Each contract test runs on both APIs: "sync" (jexkv.open_kv / open_queue) and "async"
# (jexkv.aio's, driven on an event loop in a background thread through a sync facade).
APIS = ["sync", "async"]


@pytest.fixture(params=APIS)
def api(request) -> str:
    if request.param == "async" and request.node.get_closest_marker("sync_api_only"):
        pytest.skip(request.node.get_closest_marker("sync_api_only").args[0])
    return request.param


@pytest.fixture
def test_loop(api):
    """The event loop the async API's objects of this test run on (None for the sync API)."""
    if api == "sync":
        yield None
        return
    loop = LoopThread()
    yield loop
    loop.stop()


def _opener(api: str, test_loop: LoopThread | None, sync_open: Any, async_open: Any, url: str):
    if api == "sync":
        return partial(sync_open, url)
    return lambda **options: SyncFacade(async_open(url, **options), test_loop)


@pytest.fixture
def open_kv_on_same_backend(kv_url, api, test_loop):
    """``factory(**options)``: another store on this test's backend, through this test's API."""
    opener = _opener(api, test_loop, jexkv.open_kv, jexkv.aio.open_kv, kv_url)
    yield from ended_at_teardown(opener, lambda store: store.close())


@pytest.fixture
def kv(open_kv_on_same_backend):
    """A store with default options on this test's backend."""
    return open_kv_on_same_backend()


# Teardown closes every queue with this timeout (ms), so a test whose handler is still
# blocked cannot hang the run.
QUEUE_CLOSE_TIMEOUT_MS = 2000


@pytest.fixture
def open_queue_on_same_backend(queue_url, api, test_loop):
    """``factory(**options)``: a TaskQueue on this test's backend (the URL of ``queue_url``),
    through this test's API."""
    yield from ended_at_teardown(
        _opener(api, test_loop, jexkv.open_queue, jexkv.aio.open_queue, queue_url),
        lambda queue: queue.close(timeout_ms=QUEUE_CLOSE_TIMEOUT_MS),
    )


@pytest.fixture
def q(open_queue_on_same_backend):
    """A TaskQueue with default options on this test's backend."""
    return open_queue_on_same_backend()


@pytest.fixture
def make_event(open_queue_on_same_backend):
    """``make_event()``: a threading.Event set at teardown, before the queues close.

    (It depends on the queue factory only so that it is torn down first.)
    """
    yield from ended_at_teardown(threading.Event, threading.Event.set)
