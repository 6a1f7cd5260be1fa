"""Memory adapter internals: the purge thread, the expiry heap, and named shared stores."""

from __future__ import annotations

import datetime
import uuid

import pytest
from freezegun import freeze_time

import jexkv
from tests.helpers import wait_for

LONG = 3_600_000  # a purge interval long enough that the thread never fires in a test


def test_purge_thread_starts_on_first_ttl_write_and_stops_on_close() -> None:
    kv = jexkv.open_kv("memory://", purge_interval_ms=20)
    kv.set("plain", 1)
    kv.incr("counter")
    thread = kv._space.purge_thread
    assert thread is None or not thread.is_alive()
    kv.set("ttl", 1, ttl_ms=60_000)
    thread = kv._space.purge_thread
    assert thread is not None
    assert thread.is_alive()
    assert thread.name == "jexkv-purge"
    kv.close()
    assert not thread.is_alive()


def test_purge_thread_removes_expired_entries_on_its_own() -> None:
    with jexkv.open_kv("memory://", purge_interval_ms=20, namespace="ns:") as kv:
        kv.set("short", 1, ttl_ms=30)
        kv.set("long", 2, ttl_ms=60_000)
        kv.set("plain", 3)
        data = kv._space.data  # the namespace's own space
        assert "short" in data
        assert wait_for(lambda: "short" not in data)
        assert set(data) == {"long", "plain"}
        assert data["plain"][1] is None
        assert data["long"][1] is not None


def _heap_bound(live_ttl_keys: int) -> int:
    return 4 * live_ttl_keys + 64


def test_heap_stays_bounded_under_overwrites() -> None:
    with jexkv.open_kv("memory://", purge_interval_ms=LONG) as kv:
        highest = 0
        for round_ in range(10_000):
            for i in range(10):
                kv.set(f"k{i}", round_, ttl_ms=60_000)
            highest = max(highest, len(kv._space.heap))
        assert highest <= _heap_bound(10)
        assert kv.get("k3") == 9_999


def test_heap_is_bounded_by_ttl_keys_under_deletes_and_ttl_removal() -> None:
    with jexkv.open_kv("memory://", purge_interval_ms=LONG) as kv:
        kv.set_many({f"plain{i}": i for i in range(1_000)})  # keys without a TTL
        highest = 0
        for round_ in range(5_000):
            kv.set("gone", round_, ttl_ms=60_000)
            kv.delete("gone")
            kv.set("kept", round_, ttl_ms=60_000)
            kv.set("kept", round_)  # a set without ttl_ms drops the TTL
            kv.set("persisted", round_, ttl_ms=60_000)
            kv.persist("persisted")
            kv.set("popped", round_, ttl_ms=60_000)
            kv.pop("popped")
            highest = max(highest, len(kv._space.heap))
        # At most one TTL key is live at any moment (each is dropped before the next).
        assert highest <= _heap_bound(1)
        assert kv.ttl_ms("kept") == -1


def test_purge_once_removes_exactly_the_expired_keys() -> None:
    frozen_at = "2024-05-01 12:00:00"
    with freeze_time(frozen_at) as frozen:
        with jexkv.open_kv("memory://", purge_interval_ms=LONG) as kv:
            kv.set("a", 1, ttl_ms=100)
            kv.set("b", 2, ttl_ms=200)
            kv.set("c", 3, ttl_ms=1_000)
            kv.set("d", 4)
            space = kv._space
            assert space.purge_once() == 0
            frozen.tick(datetime.timedelta(milliseconds=199))
            assert space.purge_once() == 1
            assert set(space.data) == {"b", "c", "d"}
            frozen.tick(datetime.timedelta(milliseconds=1))
            assert space.purge_once() == 1
            assert set(space.data) == {"c", "d"}
            assert space.purge_once() == 0
            assert kv.get("c") == 3
            frozen.tick(datetime.timedelta(seconds=10))
            assert space.purge_once() == 1
            assert set(space.data) == {"d"}


def test_named_store_is_freed_only_when_the_last_user_closes() -> None:
    url = "memory://shared-" + uuid.uuid4().hex
    a = jexkv.open_kv(url, purge_interval_ms=20)
    b = jexkv.open_kv(url, purge_interval_ms=20)
    a.set("k", 1)
    b.set("t", 2, ttl_ms=60_000)
    thread = b._space.purge_thread
    assert thread is not None and thread.is_alive()
    a.close()
    with pytest.raises(jexkv.ClosedError):
        a.get("k")
    assert b.get("k") == 1
    assert thread.is_alive()
    c = jexkv.open_kv(url, purge_interval_ms=20)
    assert c.get("t") == 2
    b.close()
    assert c.get("k") == 1
    c.close()
    assert not thread.is_alive()
    with jexkv.open_kv(url) as fresh:
        assert fresh.get("k") is None
        assert list(fresh.keys()) == []
