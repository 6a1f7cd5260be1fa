"""Two different namespaces never meet, for keys and queues, on every adapter.

A namespace used to be a raw prefix: ``tenant1`` saw, read and cleared the keys of
``tenant10`` (its key ``0x`` was ``tenant10``'s ``x``), and its queue ``0emails`` was
``tenant10``'s ``emails``. Now a namespace is one word (``app`` or ``app:``), and queue names
hold no ``:``, so nothing one namespace can name is a name of another.
"""

from __future__ import annotations

import threading

import pytest

import jexkv
from tests.helpers import wait_for

DEADLINE = 30.0


def test_tenant1_never_sees_tenant10s_keys(open_kv_on_same_backend):
    t1 = open_kv_on_same_backend(namespace="tenant1")
    t10 = open_kv_on_same_backend(namespace="tenant10")
    t10.set("x", "ten")
    t10.set("secret", "ten", ttl_ms=60_000)
    assert t1.get("0x") is None
    assert t1.exists("0x") is False
    assert t1.ttl_ms("0secret") == -2
    assert t1.get_many(["0x", "0secret"]) == {}
    assert list(t1.keys()) == []
    assert list(t1.keys("0")) == []
    assert t1.pop("0x") is None
    assert t1.delete("0x", "0secret") == 0
    assert t1.incr("0n") == 1
    assert t1.clear() == 1  # its own counter only
    assert sorted(t10.keys()) == ["secret", "x"]
    assert t10.get("x") == "ten"


def test_a_key_with_a_colon_does_not_reach_another_namespace(open_kv_on_same_backend):
    a = open_kv_on_same_backend(namespace="a")
    ab = open_kv_on_same_backend(namespace="ab")
    a.set("b:x", 1)  # stored under "a:b:x"; namespace "ab" is "ab:…", a namespace "a:b" is refused
    assert ab.get("x") is None
    assert list(ab.keys()) == []


def test_a_trailing_colon_names_the_same_namespace(open_kv_on_same_backend):
    with_colon = open_kv_on_same_backend(namespace="app:")
    without = open_kv_on_same_backend(namespace="app")
    with_colon.set("k", 1)
    assert without.get("k") == 1
    assert list(without.keys()) == ["k"]


@pytest.mark.parametrize("namespace", ["a:b", "a:b:", "::", ":", "app::"])
def test_a_namespace_holding_a_colon_is_refused(kv_url, namespace):
    with pytest.raises(ValueError, match="holds ':'"):
        jexkv.open_kv(kv_url, namespace=namespace)
    with pytest.raises(ValueError, match="holds ':'"):
        jexkv.open_queue(kv_url, namespace=namespace)


def test_a_namespace_that_is_not_a_str_is_refused(kv_url):
    with pytest.raises((TypeError, ValueError)):
        jexkv.open_kv(kv_url, namespace=7)


def test_tenant1_never_sees_tenant10s_queue(open_queue_on_same_backend):
    t1 = open_queue_on_same_backend(namespace="tenant1")
    t10 = open_queue_on_same_backend(namespace="tenant10")
    job = t10.enqueue("emails", "send", {"to": "ten"})
    assert t1.counts("0emails") == dict.fromkeys(
        ("waiting", "delayed", "active", "completed", "dead"), 0
    )
    assert t1.get_job("0emails", job.id) is None
    assert t1.jobs("0emails") == []
    assert t10.counts("emails")["waiting"] == 1


def test_a_worker_of_tenant1_never_runs_tenant10s_jobs(open_queue_on_same_backend):
    t1 = open_queue_on_same_backend(namespace="tenant1")
    t10 = open_queue_on_same_backend(namespace="tenant10")
    seen: list[str] = []
    ran = threading.Event()

    def handle(job):
        seen.append(job.payload)
        ran.set()

    t1.register_worker("emails", handle)
    t10.enqueue("emails", "send", "for tenant10")
    t1.enqueue("emails", "send", "for tenant1")
    assert ran.wait(DEADLINE)
    assert wait_for(lambda: t1.counts("emails")["waiting"] == 0, timeout=DEADLINE)
    assert seen == ["for tenant1"]
    assert t10.counts("emails")["waiting"] == 1


def test_the_default_namespace_never_meets_a_named_one(open_queue_on_same_backend):
    plain = open_queue_on_same_backend()
    app = open_queue_on_same_backend(namespace="app")
    app.enqueue("emails", "send")
    assert plain.counts("emails")["waiting"] == 0
    plain.enqueue("emails", "send")
    plain.enqueue("emails", "send")
    assert app.counts("emails")["waiting"] == 1
    assert plain.counts("emails")["waiting"] == 2


@pytest.mark.parametrize("name", ["a:b", ":", "emails:"])
def test_a_queue_name_holding_a_colon_is_refused(q, name):
    with pytest.raises(ValueError, match="holds ':'"):
        q.enqueue(name, "job")
    with pytest.raises(ValueError, match="holds ':'"):
        q.register_worker(name, lambda job: None)
    with pytest.raises(ValueError, match="holds ':'"):
        q.counts(name)
