"""The KVStore contract (README, "The KV API" and "KV guarantees"), run on every adapter."""

from __future__ import annotations

import datetime
import itertools
import math
import threading
from collections import Counter

import pytest
from freezegun import freeze_time

import jexkv
from tests.helpers import wait_for

START = "2026-01-01 00:00:00"


def ms(n: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=n)


def run_threads(n: int, work) -> list:
    """Run ``work(i)`` on ``n`` threads released together; return the results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    if errors:
        raise errors[0]
    return results


def jexkv_threads() -> set:
    return {t for t in threading.enumerate() if t.name.startswith("jexkv")}


# --------------------------------------------------------------------------
# get / set
# --------------------------------------------------------------------------


def test_get_missing_returns_default(kv):
    assert kv.get("missing") is None
    assert kv.get("missing", "dflt") == "dflt"
    assert kv.get("missing", default=0) == 0


def test_set_then_get(kv):
    assert kv.set("k", "v") is True
    assert kv.get("k") == "v"
    assert kv.get("k", "dflt") == "v"


def test_set_overwrites(kv):
    kv.set("k", 1)
    assert kv.set("k", 2) is True
    assert kv.get("k") == 2


def test_stored_none_is_not_missing(kv):
    kv.set("k", None)
    assert kv.get("k", "dflt") is None
    assert kv.exists("k") is True
    assert kv.get_many(["k"]) == {"k": None}


def test_set_nx_only_when_absent(kv):
    assert kv.set("k", 1, nx=True) is True
    assert kv.set("k", 2, nx=True) is False
    assert kv.get("k") == 1


def test_set_xx_only_when_present(kv):
    assert kv.set("k", 1, xx=True) is False
    assert kv.exists("k") is False
    kv.set("k", 1)
    assert kv.set("k", 2, xx=True) is True
    assert kv.get("k") == 2


@pytest.mark.frozen_clock
def test_set_nx_failure_keeps_ttl(kv):
    with freeze_time(START):
        kv.set("k", 1, ttl_ms=1000)
        assert kv.set("k", 2, nx=True) is False
        assert kv.ttl_ms("k") == 1000


@pytest.mark.frozen_clock
@pytest.mark.parametrize("flags", [{}, {"xx": True}], ids=["plain", "xx"])
def test_set_without_ttl_clears_earlier_ttl(kv, flags):
    with freeze_time(START) as frozen:
        kv.set("k", 1, ttl_ms=1000)
        assert kv.set("k", 2, **flags) is True
        assert kv.ttl_ms("k") == -1
        frozen.tick(ms(5000))
        assert kv.get("k") == 2


@pytest.mark.frozen_clock
def test_set_with_ttl_replaces_ttl(kv):
    with freeze_time(START):
        kv.set("k", 1, ttl_ms=1000)
        kv.set("k", 2, ttl_ms=5000)
        assert kv.ttl_ms("k") == 5000


# --------------------------------------------------------------------------
# delete / exists / ttl_ms / expire / persist
# --------------------------------------------------------------------------


def test_delete_counts_live_keys_only(kv):
    kv.set("a", 1)
    kv.set("b", 2)
    assert kv.delete("a", "b", "c") == 2
    assert kv.exists("a") is False
    assert kv.exists("b") is False
    assert kv.delete("a") == 0


def test_delete_same_key_twice_counts_once(kv):
    kv.set("a", 1)
    assert kv.delete("a", "a") == 1


def test_delete_nothing(kv):
    kv.set("a", 1)
    assert kv.delete() == 0
    assert kv.exists("a") is True


def test_delete_leaves_other_keys(kv):
    kv.set("a", 1)
    kv.set("b", 2)
    assert kv.delete("a") == 1
    assert kv.get("b") == 2


def test_exists(kv):
    assert kv.exists("k") is False
    kv.set("k", 0)
    assert kv.exists("k") is True


def test_ttl_ms_missing_and_no_expiry(kv):
    assert kv.ttl_ms("missing") == -2
    kv.set("k", 1)
    assert kv.ttl_ms("k") == -1


@pytest.mark.frozen_clock
def test_ttl_ms_remaining(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 1, ttl_ms=1000)
        assert kv.ttl_ms("k") == 1000
        frozen.tick(ms(250))
        assert kv.ttl_ms("k") == 750
        frozen.tick(ms(749))
        assert kv.ttl_ms("k") == 1


def test_ttl_ms_remaining_real_clock(kv):
    kv.set("k", 1, ttl_ms=60_000)
    remaining = kv.ttl_ms("k")
    assert isinstance(remaining, int)
    assert 59_000 < remaining <= 60_000


def test_expire_missing_is_false_and_creates_nothing(kv):
    assert kv.expire("missing", 1000) is False
    assert kv.exists("missing") is False
    assert kv.ttl_ms("missing") == -2


@pytest.mark.frozen_clock
def test_expire_then_time_passes(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 1)
        assert kv.expire("k", 500) is True
        assert kv.ttl_ms("k") == 500
        frozen.tick(ms(499))
        assert kv.get("k") == 1
        frozen.tick(ms(1))
        assert kv.exists("k") is False


@pytest.mark.frozen_clock
def test_expire_replaces_existing_ttl(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 1, ttl_ms=1000)
        frozen.tick(ms(900))
        assert kv.expire("k", 500) is True
        frozen.tick(ms(499))
        assert kv.exists("k") is True
        frozen.tick(ms(1))
        assert kv.exists("k") is False


def test_expire_keeps_value(kv):
    kv.set("k", {"a": 1})
    kv.expire("k", 60_000)
    assert kv.get("k") == {"a": 1}


@pytest.mark.frozen_clock
def test_persist_then_time_passes(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 1, ttl_ms=500)
        assert kv.persist("k") is True
        assert kv.ttl_ms("k") == -1
        frozen.tick(ms(5000))
        assert kv.get("k") == 1
        assert kv.persist("k") is False


def test_persist_without_ttl_or_missing_is_false(kv):
    kv.set("k", 1)
    assert kv.persist("k") is False
    assert kv.persist("missing") is False
    assert kv.exists("missing") is False
    assert kv.get("k") == 1


# --------------------------------------------------------------------------
# incr
# --------------------------------------------------------------------------


def test_incr_missing_starts_at_zero(kv):
    assert kv.incr("n") == 1
    assert kv.incr("n") == 2
    assert kv.get("n") == 2


def test_incr_amount_and_negative_amount(kv):
    assert kv.incr("n", 5) == 5
    assert kv.incr("n", amount=-7) == -2
    assert kv.incr("m", -3) == -3
    assert kv.get("n") == -2


def test_incr_returns_int(kv):
    result = kv.incr("n", 3)
    assert type(result) is int


def test_incr_on_int_stored_by_set(kv):
    kv.set("n", 41)
    assert kv.incr("n") == 42
    kv.set("big", 10**12)
    assert kv.incr("big", 10**12) == 2 * 10**12


def test_incr_value_readable_by_get_and_set(kv):
    kv.incr("n", 7)
    assert kv.get("n") == 7
    assert kv.get_many(["n"]) == {"n": 7}
    assert kv.pop("n") == 7


@pytest.mark.parametrize(
    "value",
    ["abc", "5", 1.5, 2.0, True, None, {"a": 1}, [1]],
    ids=["str", "digit-str", "float", "integral-float", "bool", "null", "dict", "list"],
)
def test_incr_non_integer_raises_wrong_type(kv, value):
    kv.set("k", value)
    with pytest.raises(jexkv.WrongTypeError):
        kv.incr("k")
    assert kv.get("k") == value
    assert type(kv.get("k")) is type(value)


def test_wrong_type_error_is_type_error():
    assert issubclass(jexkv.WrongTypeError, jexkv.JexkvError)
    assert issubclass(jexkv.WrongTypeError, TypeError)


@pytest.mark.frozen_clock
def test_incr_ttl_applies_when_creating(kv):
    with freeze_time(START) as frozen:
        assert kv.incr("n", ttl_ms=1000) == 1
        assert kv.ttl_ms("n") == 1000
        frozen.tick(ms(400))
        assert kv.incr("n", ttl_ms=1000) == 2
        assert kv.ttl_ms("n") == 600
        frozen.tick(ms(599))
        assert kv.get("n") == 2
        frozen.tick(ms(1))
        assert kv.exists("n") is False


def test_incr_ttl_ignored_on_existing_key_without_ttl(kv):
    kv.set("n", 1)
    assert kv.incr("n", ttl_ms=1000) == 2
    assert kv.ttl_ms("n") == -1


@pytest.mark.frozen_clock
def test_incr_keeps_existing_ttl(kv):
    with freeze_time(START) as frozen:
        kv.set("n", 1, ttl_ms=1000)
        frozen.tick(ms(100))
        assert kv.incr("n") == 2
        assert kv.ttl_ms("n") == 900


# --------------------------------------------------------------------------
# pop / get_many / set_many
# --------------------------------------------------------------------------


def test_pop_returns_value_then_default(kv):
    kv.set("k", {"token": "x"})
    assert kv.pop("k") == {"token": "x"}
    assert kv.exists("k") is False
    assert kv.pop("k") is None
    assert kv.pop("k", "dflt") == "dflt"


def test_pop_stored_none(kv):
    kv.set("k", None)
    assert kv.pop("k", "dflt") is None
    assert kv.exists("k") is False


def test_get_many_returns_only_live_keys(kv):
    kv.set("a", 1)
    kv.set("b", [2])
    assert kv.get_many(["a", "b", "c"]) == {"a": 1, "b": [2]}
    assert kv.get_many(["c"]) == {}
    assert kv.get_many([]) == {}


def test_get_many_accepts_any_iterable(kv):
    kv.set("a", 1)
    assert kv.get_many(k for k in ["a", "z"]) == {"a": 1}


def test_set_many_without_ttl(kv):
    assert kv.set_many({"a": 1, "b": {"x": [1]}}) is None
    assert kv.get_many(["a", "b"]) == {"a": 1, "b": {"x": [1]}}
    assert kv.ttl_ms("a") == -1
    assert kv.ttl_ms("b") == -1


@pytest.mark.frozen_clock
def test_set_many_with_ttl(kv):
    with freeze_time(START) as frozen:
        kv.set_many({"a": 1, "b": 2}, ttl_ms=1000)
        assert kv.ttl_ms("a") == 1000
        assert kv.ttl_ms("b") == 1000
        frozen.tick(ms(999))
        assert kv.get_many(["a", "b"]) == {"a": 1, "b": 2}
        frozen.tick(ms(1))
        assert kv.get_many(["a", "b"]) == {}


@pytest.mark.frozen_clock
def test_set_many_overwrites_and_clears_ttl(kv):
    with freeze_time(START) as frozen:
        kv.set("a", 0, ttl_ms=1000)
        kv.set_many({"a": 1})
        assert kv.get("a") == 1
        assert kv.ttl_ms("a") == -1
        frozen.tick(ms(5000))
        assert kv.get("a") == 1


def test_set_many_empty(kv):
    kv.set_many({})
    assert list(kv.keys()) == []


# --------------------------------------------------------------------------
# keys / clear
# --------------------------------------------------------------------------


def test_keys_returns_iterator_not_list(kv):
    kv.set("a", 1)
    it = kv.keys()
    assert not isinstance(it, (list, tuple, set))
    assert iter(it) is it
    assert list(it) == ["a"]


def test_keys_empty_store(kv):
    assert list(kv.keys()) == []
    assert list(kv.keys("p")) == []


def test_keys_streams_every_key_once(kv):
    expected = {f"k{i:05d}": i for i in range(2500)}
    kv.set_many(expected)
    counts = Counter(kv.keys())
    assert set(counts) == set(expected)
    assert set(counts.values()) == {1}
    assert all(type(k) is str for k in counts)


def test_keys_prefix_on_many_keys(kv):
    kv.set_many({f"k{i:05d}": i for i in range(2500)})
    found = list(kv.keys("k01"))
    assert sorted(found) == [f"k{i:05d}" for i in range(1000, 2000)]


def test_keys_partially_consumed_does_not_block_writes(kv, open_kv_on_same_backend):
    kv.set_many({f"k{i:04d}": i for i in range(1500)})
    other = open_kv_on_same_backend()
    it = kv.keys()
    first = list(itertools.islice(it, 10))
    assert len(first) == 10
    assert kv.set("new", 1) is True
    assert other.set("other", 2) is True
    assert other.delete("k0000", "k0001") == 2
    assert kv.get("other") == 2


def test_delete_while_iterating_keys(kv):
    expected = {f"k{i:04d}" for i in range(1500)}
    kv.set_many(dict.fromkeys(expected, 1))
    seen = set()
    for key in kv.keys("k"):
        seen.add(key)
        assert kv.delete(key) == 1
    assert seen == expected
    assert list(kv.keys()) == []


PREFIX_KEYS = [
    "abc",
    "Abc",
    "a%b",
    "a%%",
    "axb",
    "a_b",
    "a*1",
    "a[1]",
    "a[",
    "a]",
    "a\\b",
    "a?",
    "a^",
    "é1",
    "é2",
    "e1",
    "日本:1",
    "日本:2",
    "日:3",
    "🎉x",
    "plain",
]


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "a",
        "A",
        "a%",
        "a_",
        "a*",
        "a[",
        "a[1",
        "a]",
        "a\\",
        "a?",
        "a^",
        "é",
        "日本:",
        "🎉",
        "zz",
    ],
)
def test_keys_prefix_is_literal(kv, prefix):
    kv.set_many(dict.fromkeys(PREFIX_KEYS, 1))
    expected = sorted(k for k in PREFIX_KEYS if k.startswith(prefix))
    assert sorted(kv.keys(prefix)) == expected


def test_keys_prefix_keyword(kv):
    kv.set("ab", 1)
    kv.set("b", 1)
    assert list(kv.keys(prefix="a")) == ["ab"]


def test_clear_returns_count_and_empties(kv):
    kv.set_many({"a": 1, "b": 2, "c": 3})
    assert kv.clear() == 3
    assert list(kv.keys()) == []
    assert kv.exists("a") is False
    assert kv.clear() == 0


def test_store_usable_after_clear(kv):
    kv.set("a", 1)
    kv.clear()
    assert kv.set("a", 2, nx=True) is True
    assert kv.incr("n") == 1
    assert kv.get("a") == 2


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**70),
    2**100,
    1.5,
    -0.25,
    1e300,
    "",
    "plain",
    "héllo ☃ 日本 🎉",
    'quote " backslash \\ newline \n nul \x00',
    [],
    {},
    [1, "a", None, True, 2.5],
    {"a": {"b": [1, 2, {"c": None}]}, "é": ["日本"]},
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_value_round_trip(kv, value):
    kv.set("k", value)
    got = kv.get("k")
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_value_round_trip_many_and_pop(kv, value):
    kv.set_many({"k": value})
    assert kv.get_many(["k"]) == {"k": value}
    got = kv.pop("k")
    assert got == value
    assert type(got) is type(value)


def test_tuple_comes_back_as_list(kv):
    kv.set("k", (1, "a", (2, 3)))
    assert kv.get("k") == [1, "a", [2, 3]]
    assert type(kv.get("k")) is list


def test_mutating_stored_value_does_not_change_store(kv):
    value = {"a": [1], "b": {"c": 1}}
    kv.set("k", value)
    value["a"].append(2)
    value["b"]["c"] = 99
    value["new"] = True
    assert kv.get("k") == {"a": [1], "b": {"c": 1}}


def test_mutating_set_many_value_does_not_change_store(kv):
    value = {"a": [1]}
    kv.set_many({"k": value})
    value["a"].append(2)
    assert kv.get("k") == {"a": [1]}


def test_mutating_returned_value_does_not_change_store(kv):
    kv.set("k", {"a": [1]})
    got = kv.get("k")
    got["a"].append(2)
    got["x"] = 1
    many = kv.get_many(["k"])
    many["k"]["a"].append(3)
    assert kv.get("k") == {"a": [1]}


# --------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------

NAMESPACE_PAIRS = [("a:", "b:"), ("a_", "ab"), ("%:", "x:")]


@pytest.fixture(params=NAMESPACE_PAIRS, ids=["a:|b:", "a_|ab", "%:|x:"])
def two_namespaces(request, open_kv_on_same_backend):
    ns_a, ns_b = request.param
    return open_kv_on_same_backend(namespace=ns_a), open_kv_on_same_backend(namespace=ns_b)


def test_namespaces_isolate_get_exists_keys(two_namespaces):
    a, b = two_namespaces
    a.set("k", "from-a")
    b.set("c", "from-b")
    assert b.get("k") is None
    assert b.exists("k") is False
    assert a.get("c") is None
    assert list(a.keys()) == ["k"]
    assert list(b.keys()) == ["c"]
    assert b.get_many(["k", "c"]) == {"c": "from-b"}


def test_namespaces_same_key_independent(two_namespaces):
    a, b = two_namespaces
    a.set("k", 1)
    b.set("k", 2)
    assert a.get("k") == 1
    assert b.get("k") == 2
    assert b.set("k", 3, nx=True) is False
    assert a.pop("k") == 1
    assert b.get("k") == 2


def test_namespaces_isolate_delete_and_clear(two_namespaces):
    a, b = two_namespaces
    a.set_many({"k": 1, "x": 1})
    b.set_many({"k": 2, "y": 2})
    assert b.delete("k", "x") == 1
    assert a.get("k") == 1
    assert b.clear() == 1
    assert sorted(a.keys()) == ["k", "x"]
    assert list(b.keys()) == []


def test_namespaces_isolate_incr(two_namespaces):
    a, b = two_namespaces
    assert a.incr("n") == 1
    assert b.incr("n") == 1
    assert a.incr("n") == 2
    assert b.get("n") == 1


def test_namespace_keys_are_returned_without_prefix(open_kv_on_same_backend):
    ns = open_kv_on_same_backend(namespace="app:")
    ns.set("user:1", 1)
    assert list(ns.keys()) == ["user:1"]
    assert list(ns.keys("user:")) == ["user:1"]
    assert list(ns.keys("app:")) == []


def test_root_store_keys_not_seen_by_namespaced_store(kv, open_kv_on_same_backend):
    ns = open_kv_on_same_backend(namespace="app:")
    kv.set("root", 1)
    kv.set("app", 1)
    ns.set("mine", 2)
    assert list(ns.keys()) == ["mine"]
    assert ns.get("root") is None
    assert ns.clear() == 1
    assert kv.get("root") == 1
    assert kv.get("app") == 1


def test_same_backend_stores_share_data(kv, open_kv_on_same_backend):
    other = open_kv_on_same_backend()
    kv.set("k", {"v": 1})
    assert other.get("k") == {"v": 1}
    assert other.incr("n") == 1
    assert kv.incr("n") == 2


# --------------------------------------------------------------------------
# expiry is exact for readers
# --------------------------------------------------------------------------

TTL = 1000

# name -> (operation, result one ms before expiry, result at expiry)
EXPIRY_CHECKS = {
    "get": (lambda kv: kv.get("k", "dflt"), 7, "dflt"),
    "exists": (lambda kv: kv.exists("k"), True, False),
    "keys": (lambda kv: list(kv.keys()), ["k"], []),
    "keys-prefix": (lambda kv: list(kv.keys("k")), ["k"], []),
    "ttl_ms": (lambda kv: kv.ttl_ms("k"), 1, -2),
    "get_many": (lambda kv: kv.get_many(["k"]), {"k": 7}, {}),
    "pop": (lambda kv: kv.pop("k", "dflt"), 7, "dflt"),
    "delete": (lambda kv: kv.delete("k"), 1, 0),
    "expire": (lambda kv: kv.expire("k", 5000), True, False),
    "persist": (lambda kv: kv.persist("k"), True, False),
    "incr": (lambda kv: kv.incr("k"), 8, 1),
    "set-nx": (lambda kv: kv.set("k", 0, nx=True), False, True),
    "set-xx": (lambda kv: kv.set("k", 0, xx=True), True, False),
}


@pytest.mark.frozen_clock
@pytest.mark.parametrize("name", list(EXPIRY_CHECKS))
def test_live_one_ms_before_ttl(kv, name):
    op, before, _ = EXPIRY_CHECKS[name]
    with freeze_time(START) as frozen:
        kv.set("k", 7, ttl_ms=TTL)
        frozen.tick(ms(TTL - 1))
        assert op(kv) == before


@pytest.mark.frozen_clock
@pytest.mark.parametrize("name", list(EXPIRY_CHECKS))
def test_gone_at_exactly_ttl(kv, name):
    op, _, after = EXPIRY_CHECKS[name]
    with freeze_time(START) as frozen:
        kv.set("k", 7, ttl_ms=TTL)
        frozen.tick(ms(TTL))
        assert op(kv) == after


@pytest.mark.frozen_clock
def test_expired_key_stays_gone_for_every_reader(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 7, ttl_ms=TTL)
        kv.set("live", 1)
        frozen.tick(ms(TTL + 5000))
        assert kv.get("k") is None
        assert kv.exists("k") is False
        assert kv.ttl_ms("k") == -2
        assert list(kv.keys()) == ["live"]
        assert kv.get_many(["k", "live"]) == {"live": 1}
        assert kv.delete("k", "live") == 1


@pytest.mark.frozen_clock
def test_set_after_expiry_starts_fresh(kv):
    with freeze_time(START) as frozen:
        kv.set("k", 7, ttl_ms=TTL)
        frozen.tick(ms(TTL))
        assert kv.set("k", 8) is True
        assert kv.ttl_ms("k") == -1
        assert kv.get("k") == 8


@pytest.mark.frozen_clock
def test_incr_on_expired_key_restarts_with_new_ttl(kv):
    with freeze_time(START) as frozen:
        kv.set("n", 5, ttl_ms=TTL)
        frozen.tick(ms(TTL))
        assert kv.incr("n", ttl_ms=500) == 1
        assert kv.ttl_ms("n") == 500
        frozen.tick(ms(499))
        assert kv.get("n") == 1
        frozen.tick(ms(1))
        assert kv.exists("n") is False


@pytest.mark.frozen_clock
def test_incr_on_expired_key_without_ttl_has_no_expiry(kv):
    with freeze_time(START) as frozen:
        kv.set("n", 5, ttl_ms=TTL)
        frozen.tick(ms(TTL))
        assert kv.incr("n") == 1
        assert kv.ttl_ms("n") == -1


@pytest.mark.frozen_clock
def test_expiry_seen_by_another_store_on_same_backend(kv, open_kv_on_same_backend):
    other = open_kv_on_same_backend()
    with freeze_time(START) as frozen:
        kv.set("k", 1, ttl_ms=TTL)
        frozen.tick(ms(TTL - 1))
        assert other.get("k") == 1
        frozen.tick(ms(1))
        assert other.get("k") is None
        assert other.ttl_ms("k") == -2


# --------------------------------------------------------------------------
# concurrency
# --------------------------------------------------------------------------


def test_concurrent_pop_exactly_one_winner(kv):
    kv.set("token", "secret")
    results = run_threads(16, lambda i: kv.pop("token", "none"))
    assert sorted(results) == ["none"] * 15 + ["secret"]
    assert kv.exists("token") is False


def test_concurrent_pop_across_stores(kv, open_kv_on_same_backend):
    other = open_kv_on_same_backend()
    stores = [kv, other]
    for round_ in range(5):
        kv.set("token", round_)
        results = run_threads(8, lambda i: stores[i % 2].pop("token"))
        assert [r for r in results if r is not None] == [round_]


def test_concurrent_incr_no_lost_updates(kv):
    def work(i):
        return [kv.incr("n") for _ in range(300)]

    results = run_threads(8, work)
    values = [v for chunk in results for v in chunk]
    assert len(values) == 2400
    assert set(values) == set(range(1, 2401))
    assert kv.get("n") == 2400
    for chunk in results:
        assert chunk == sorted(chunk)


def test_concurrent_incr_across_stores(kv, open_kv_on_same_backend):
    stores = [kv, open_kv_on_same_backend()]
    results = run_threads(4, lambda i: [stores[i % 2].incr("n") for _ in range(100)])
    values = [v for chunk in results for v in chunk]
    assert sorted(values) == list(range(1, 401))


def test_concurrent_set_nx_exactly_one_winner(kv):
    results = run_threads(12, lambda i: kv.set("lock", i, nx=True))
    assert results.count(True) == 1
    assert results.count(False) == 11
    assert kv.get("lock") == results.index(True)


def test_concurrent_mixed_operations(kv):
    def work(i):
        for j in range(50):
            key = f"t{i}:{j}"
            kv.set(key, j, ttl_ms=60_000)
            assert kv.get(key) == j
            assert kv.pop(key) == j
        return True

    assert run_threads(8, work) == [True] * 8
    assert list(kv.keys()) == []


# --------------------------------------------------------------------------
# bad input: a clear error and nothing written
# --------------------------------------------------------------------------

KEY_METHODS = {
    "get": lambda kv, k: kv.get(k),
    "set": lambda kv, k: kv.set(k, 1),
    "set-ttl": lambda kv, k: kv.set(k, 1, ttl_ms=1000),
    "delete": lambda kv, k: kv.delete(k),
    "delete-mixed": lambda kv, k: kv.delete("present", k),
    "exists": lambda kv, k: kv.exists(k),
    "ttl_ms": lambda kv, k: kv.ttl_ms(k),
    "expire": lambda kv, k: kv.expire(k, 1000),
    "persist": lambda kv, k: kv.persist(k),
    "incr": lambda kv, k: kv.incr(k),
    "pop": lambda kv, k: kv.pop(k),
    "get_many": lambda kv, k: kv.get_many(["present", k]),
    "set_many": lambda kv, k: kv.set_many({"valid": 1, k: 2}),
}


@pytest.mark.parametrize("method", list(KEY_METHODS))
@pytest.mark.parametrize("key", [None, 1, b"x", ("a",)], ids=["None", "int", "bytes", "tuple"])
def test_non_str_key_raises_type_error(kv, method, key):
    kv.set("present", "v")
    with pytest.raises(TypeError):
        KEY_METHODS[method](kv, key)
    assert sorted(kv.keys()) == ["present"]
    assert kv.get("present") == "v"


@pytest.mark.parametrize("method", list(KEY_METHODS))
def test_empty_key_raises_value_error(kv, method):
    kv.set("present", "v")
    with pytest.raises(ValueError):
        KEY_METHODS[method](kv, "")
    assert sorted(kv.keys()) == ["present"]
    assert kv.get("present") == "v"


def test_empty_key_rejected_with_namespace(open_kv_on_same_backend):
    ns = open_kv_on_same_backend(namespace="app:")
    with pytest.raises(ValueError):
        ns.set("", 1)
    assert list(ns.keys()) == []


BAD_VALUES = [
    {1, 2},
    object(),
    float("nan"),
    float("inf"),
    float("-inf"),
    {1: "a"},
    {("t",): "a"},
    b"bytes",
    {"ok": [1, {"deep": {3}}]},
    [1, float("nan")],
]
BAD_VALUE_IDS = [
    "set",
    "object",
    "nan",
    "inf",
    "-inf",
    "int-dict-key",
    "tuple-dict-key",
    "bytes",
    "nested-set",
    "nested-nan",
]


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), [1, float("nan")], {"a": float("-inf")}, [[math.nan]]]
)
def test_nan_is_refused_with_one_message_on_every_adapter(kv, value):
    with pytest.raises(jexkv.SerializationError, match=r"\(NaN and infinities are not JSON\)"):
        kv.set("k", value)
    with pytest.raises(jexkv.SerializationError, match=r"\(NaN and infinities are not JSON\)"):
        kv.set_many({"k": value})
    assert list(kv.keys()) == []


def test_serialization_error_hierarchy():
    assert issubclass(jexkv.SerializationError, jexkv.JexkvError)
    assert issubclass(jexkv.SerializationError, TypeError)


@pytest.mark.parametrize("value", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_set_non_json_value_raises_and_writes_nothing(kv, value):
    kv.set("old", "kept")
    with pytest.raises(jexkv.SerializationError):
        kv.set("new", value)
    with pytest.raises(jexkv.SerializationError):
        kv.set("old", value)
    assert sorted(kv.keys()) == ["old"]
    assert kv.get("old") == "kept"


@pytest.mark.parametrize("value", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_set_many_non_json_value_writes_nothing(kv, value):
    kv.set("old", "kept")
    with pytest.raises(jexkv.SerializationError):
        kv.set_many({"a": 1, "old": "changed", "bad": value, "z": 2})
    assert sorted(kv.keys()) == ["old"]
    assert kv.get("old") == "kept"


def test_set_many_non_json_value_with_ttl_writes_nothing(kv):
    with pytest.raises(jexkv.SerializationError):
        kv.set_many({"a": 1, "bad": {1, 2}}, ttl_ms=1000)
    assert list(kv.keys()) == []


BAD_TTLS_VALUE = [0, -5]
BAD_TTLS_ANY = [True, False, "100", 1.5, 100.0]

TTL_METHODS = {
    "set": lambda kv, ttl: kv.set("new", 1, ttl_ms=ttl),
    "expire": lambda kv, ttl: kv.expire("present", ttl),
    "incr": lambda kv, ttl: kv.incr("new", ttl_ms=ttl),
    "set_many": lambda kv, ttl: kv.set_many({"new": 1, "new2": 2}, ttl_ms=ttl),
}


def _assert_untouched(kv):
    assert sorted(kv.keys()) == ["present"]
    assert kv.exists("new") is False
    assert kv.ttl_ms("present") == -1
    assert kv.get("present") == "v"


@pytest.mark.parametrize("method", list(TTL_METHODS))
@pytest.mark.parametrize("ttl", BAD_TTLS_VALUE)
def test_non_positive_ttl_raises_value_error(kv, method, ttl):
    kv.set("present", "v")
    with pytest.raises(ValueError):
        TTL_METHODS[method](kv, ttl)
    _assert_untouched(kv)


@pytest.mark.parametrize("method", list(TTL_METHODS))
@pytest.mark.parametrize("ttl", BAD_TTLS_ANY, ids=repr)
def test_non_int_ttl_rejected(kv, method, ttl):
    kv.set("present", "v")
    with pytest.raises((TypeError, ValueError)):
        TTL_METHODS[method](kv, ttl)
    _assert_untouched(kv)


@pytest.mark.parametrize("amount", [1.5, "2", None, 2.0], ids=repr)
def test_incr_non_int_amount_raises_type_error(kv, amount):
    with pytest.raises(TypeError):
        kv.incr("n", amount)
    assert kv.exists("n") is False
    kv.set("m", 1)
    with pytest.raises(TypeError):
        kv.incr("m", amount)
    assert kv.get("m") == 1


def test_set_nx_and_xx_together_raises_value_error(kv):
    with pytest.raises(ValueError):
        kv.set("k", 1, nx=True, xx=True)
    assert kv.exists("k") is False
    kv.set("k", 1)
    with pytest.raises(ValueError):
        kv.set("k", 2, nx=True, xx=True)
    assert kv.get("k") == 1


# --------------------------------------------------------------------------
# lifecycle
# --------------------------------------------------------------------------


def test_store_is_a_context_manager(open_kv_on_same_backend):
    store = open_kv_on_same_backend()
    with store as entered:
        assert entered is store
        entered.set("k", 1)
    with pytest.raises(jexkv.ClosedError):
        store.get("k")


def test_context_manager_closes_on_error(open_kv_on_same_backend):
    store = open_kv_on_same_backend()
    with pytest.raises(RuntimeError), store:
        raise RuntimeError("boom")
    with pytest.raises(jexkv.ClosedError):
        store.exists("k")


def test_close_is_idempotent(kv):
    assert kv.close() is None
    assert kv.close() is None


def test_closed_error_hierarchy():
    assert issubclass(jexkv.ClosedError, jexkv.JexkvError)


CLOSED_CALLS = {
    "get": lambda kv: kv.get("k"),
    "set": lambda kv: kv.set("k", 1),
    "delete": lambda kv: kv.delete("k"),
    "exists": lambda kv: kv.exists("k"),
    "ttl_ms": lambda kv: kv.ttl_ms("k"),
    "expire": lambda kv: kv.expire("k", 1000),
    "persist": lambda kv: kv.persist("k"),
    "incr": lambda kv: kv.incr("k"),
    "pop": lambda kv: kv.pop("k"),
    "get_many": lambda kv: kv.get_many(["k"]),
    "set_many": lambda kv: kv.set_many({"k": 1}),
    "keys": lambda kv: list(kv.keys()),
    "clear": lambda kv: kv.clear(),
}


@pytest.mark.parametrize("method", list(CLOSED_CALLS))
def test_every_method_raises_after_close(kv, method):
    kv.set("k", 1)
    kv.close()
    with pytest.raises(jexkv.ClosedError):
        CLOSED_CALLS[method](kv)


def test_closing_one_store_leaves_others_working(kv, open_kv_on_same_backend):
    other = open_kv_on_same_backend()
    kv.set("k", 1, ttl_ms=60_000)
    kv.close()
    assert other.get("k") == 1
    assert other.incr("n") == 1


def test_data_survives_reopen(kv, open_kv_on_same_backend):
    keep_open = open_kv_on_same_backend()
    kv.set("k", [1, 2])
    kv.close()
    reopened = open_kv_on_same_backend()
    assert reopened.get("k") == [1, 2]
    assert keep_open.get("k") == [1, 2]


def test_close_stops_every_thread_it_started(kv_url):
    before = jexkv_threads()
    store = jexkv.open_kv(kv_url)
    store.set("a", 1, ttl_ms=60_000)
    store.set_many({"b": 1}, ttl_ms=60_000)
    store.incr("c", ttl_ms=60_000)
    store.set("d", 1)
    store.expire("d", 60_000)
    started = jexkv_threads() - before
    store.close()
    assert all(not t.is_alive() for t in started)
    assert jexkv_threads() - before == set()


def test_close_from_another_thread_stops_threads(kv_url):
    before = jexkv_threads()
    store = jexkv.open_kv(kv_url)
    store.set("a", 1, ttl_ms=60_000)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()
    assert jexkv_threads() - before == set()
    with pytest.raises(jexkv.ClosedError):
        store.get("a")


# --------------------------------------------------------------------------
# open_kv defaults
# --------------------------------------------------------------------------


def test_open_kv_without_url_uses_env(kv, kv_url, monkeypatch):
    monkeypatch.setenv("JEXKV_URL", kv_url)
    kv.set("k", "shared")
    with jexkv.open_kv() as store:
        assert isinstance(store, jexkv.KVStore)
        assert store.get("k") == "shared"


def test_open_kv_without_url_or_env_uses_private_memory(monkeypatch, tmp_path):
    monkeypatch.delenv("JEXKV_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with jexkv.open_kv() as first, jexkv.open_kv() as second:
        assert isinstance(first, jexkv.KVStore)
        first.set("k", 1)
        assert first.get("k") == 1
        assert second.get("k") is None
    assert list(tmp_path.iterdir()) == []


def test_open_kv_returns_kvstore(kv):
    assert isinstance(kv, jexkv.KVStore)


def test_keys_expire_in_real_time(kv):
    # The same rules as the frozen-clock tests, on the real clock (servers keep their own).
    kv.set("short", 1, ttl_ms=60)
    kv.set("counter", 1, ttl_ms=60)
    kv.set("stays", 2, ttl_ms=60_000)
    assert kv.exists("short") and 0 < kv.ttl_ms("short") <= 60
    assert wait_for(lambda: not kv.exists("short"), timeout=5)
    assert kv.get("short") is None
    assert kv.ttl_ms("short") == -2
    assert kv.pop("short", "gone") == "gone"
    assert sorted(kv.keys()) == ["stays"]
    assert wait_for(lambda: not kv.exists("counter"), timeout=5)
    assert kv.incr("counter") == 1
    assert kv.ttl_ms("counter") == -1


# Lone surrogates (issue 13): a str that is not text. Keys, prefixes and namespaces holding
# one are refused before any I/O on every adapter; values keep them, escaped in JSON.
LONE = "a\ud800b"


@pytest.mark.parametrize(
    "call",
    [
        lambda kv: kv.set(LONE, 1),
        lambda kv: kv.get(LONE),
        lambda kv: kv.delete("ok", LONE),
        lambda kv: kv.exists(LONE),
        lambda kv: kv.ttl_ms(LONE),
        lambda kv: kv.expire(LONE, 1000),
        lambda kv: kv.persist(LONE),
        lambda kv: kv.incr(LONE),
        lambda kv: kv.get_many(["ok", LONE]),
        lambda kv: kv.set_many({"ok": 1, LONE: 2}),
        lambda kv: list(kv.keys("\udfff")),
    ],
    ids=["set", "get", "delete", "exists", "ttl_ms", "expire", "persist", "incr", "get_many",
         "set_many", "keys"],
)  # fmt: skip
def test_key_with_a_lone_surrogate_is_refused(kv, call):
    with pytest.raises(ValueError, match="lone surrogate"):
        call(kv)
    assert list(kv.keys()) == []


def test_namespace_with_a_lone_surrogate_is_refused(open_kv_on_same_backend):
    with pytest.raises(ValueError, match="namespace .* lone surrogate"):
        open_kv_on_same_backend(namespace="ns\udc80:")


@pytest.mark.parametrize(
    "value",
    ["\ud800", "x\udfffy", ["\udbff", {"k": "\udc00"}], {"\ud83d": 1}, {"a": "\ud800", "b": 2}],
)
def test_values_with_lone_surrogates_round_trip(kv, value):
    kv.set("k", value)
    assert kv.get("k") == value
    kv.set_many({"m": value})
    assert kv.get_many(["m"]) == {"m": value}


def test_non_ascii_keys_and_large_non_ascii_values_round_trip(kv):
    value = {"text": "ünïcødé € 😀 " * 10_000, "list": ["日本語"] * 100}
    kv.set("ключ-😀", value)
    assert kv.get("ключ-😀") == value
    assert list(kv.keys("ключ")) == ["ключ-😀"]


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_a_value_over_a_mib_of_utf8_round_trips(kv, shift):
    # Over 1 MiB of UTF-8 (read back in chunks on Redis), 1- to 4-byte characters across the
    # chunk edges, with a lone surrogate after them.
    value = "a" * shift + "é€😀x" * 150_000 + "\ud800"
    kv.set("big", value)
    assert kv.get("big") == value
    assert kv.get_many(["big"]) == {"big": value}
