"""Fuzzing with hypothesis: the RESP reply parser, and the KV operations against a dict model.

Parser: whatever bytes arrive, however the network cuts them, ``ReplyParser`` returns replies,
says NEED_DATA, or raises ProtocolError (and nothing else); it never spins, never holds more
than its limits allow, and gives the same replies whatever the chunking. Valid encodings
(tests/resp/test_protocol.py's independent encoder) cut at every byte boundary parse the same.

KV: one hypothesis state machine per adapter (memory, SQLite, Redis, Redis Cluster, Sentinel)
runs random sequences of set (nx/xx, long TTLs), get, delete, exists, incr, pop, get_many,
set_many, keys(prefix), ttl_ms, expire, persist and clear, and checks every answer against a
plain dict. Keys come from a small alphabet (collisions; glob and range edge characters),
values from JSON. TTLs are ten minutes, so nothing expires during a test: the model only
tracks "has a TTL".
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import jexkv
from jexkv.resp.protocol import NEED_DATA, ReplyParser
from tests.resp.test_protocol import assert_same, complete_replies, encode, resp_values

# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def hang_guard(seconds: float = 10.0) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body runs longer than ``seconds``."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise AssertionError(f"the parser ran for more than {seconds} s: it loops")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


LIMITS = {"max_bulk_len": 64, "max_aggregate_len": 16, "max_depth": 6, "max_line_len": 32}


def longest_line(data: bytes) -> int:
    return max(len(part) for part in data.split(b"\r\n"))


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])] or [b""]


def parse_stream(parts: list[bytes], **limits: Any) -> tuple[list[Any], list[Any], str | None]:
    """Feed ``parts`` one by one, taking every reply out after each; (replies, pushes,
    the name of the exception that ended it or None). Checks the invariants on the way."""
    parser = ReplyParser(**limits)
    total = sum(len(p) for p in parts)
    longest = longest_line(b"".join(parts))
    replies: list[Any] = []
    fed = 0
    for part in parts:
        parser.feed(part)
        fed += len(part)
        # Every reply takes at least 3 bytes ("_\r\n"): more answers than that is a loop.
        for _ in range(total // 3 + 2):
            try:
                reply = parser.next_reply()
            except jexkv.ProtocolError:
                # broken for good: whatever comes next, the same error
                with pytest.raises(jexkv.ProtocolError):
                    parser.next_reply()
                parser.feed(b"+OK\r\n")
                with pytest.raises(jexkv.ProtocolError):
                    parser.next_reply()
                return replies, list(parser.pushes), "ProtocolError"
            if reply is NEED_DATA:
                break
            replies.append((reply, parser.attributes))
        else:
            raise AssertionError(f"more replies than {total} bytes can hold: the parser loops")
        # Memory: what is kept is an unfinished line (within max_line_len, or a complete
        # header line) and at most one bulk of at most max_bulk_len, never more than fed.
        assert parser.buffered <= fed
        bound = max(limits.get("max_line_len", 65536), longest) + 2
        bound += limits.get("max_bulk_len", 0) + 2
        assert parser.buffered <= bound, (parser.buffered, bound)
    return replies, list(parser.pushes), None


# RESP-shaped noise: type bytes, lengths, CRLFs and bits of payload, in any order.
TOKENS = [
    *(bytes([c]) for c in b"*%~>|$!=+-:(_#,"),
    b"\r\n",
    b"\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    *(str(i).encode() for i in range(10)),
    b"-1",
    b"-2",
    b"?",
    b"t",
    b"f",
    b"txt:",
    b"nan",
    b"inf",
    b"1e5",
    b"99999999999999999999",
    b"OK",
    b"ERR x",
]
resp_noise = st.lists(
    st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=3)), max_size=80
).map(b"".join)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@st.composite
def mutated_replies(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few bytes replaced, dropped or inserted."""
    data = bytearray(b"".join(encode(v) for v in draw(st.lists(resp_values, max_size=3))))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        how = draw(st.sampled_from(["replace", "drop", "insert"]))
        token = draw(st.sampled_from(TOKENS))
        if how == "replace":
            data[at : at + len(token)] = token
        elif how == "drop":
            del data[at : at + draw(st.integers(min_value=1, max_value=4))]
        else:
            data[at:at] = token
    return bytes(data)


hostile = st.one_of(resp_noise, mutated_replies())

# A map whose key is a map (or a set): RESP3 allows any type as a key.
MAP_KEYED_BY_A_MAP = b"%1\r\n%0\r\n:1\r\n"
MAP_KEYED_BY_A_SET = b"%1\r\n~1\r\n:2\r\n:1\r\n"
ATTRIBUTE_KEYED_BY_A_MAP = b"|1\r\n%0\r\n:1\r\n+OK\r\n"
# A complete simple string longer than max_line_len (32 in LIMITS).
LONG_LINE = b"+" + b"a" * 40 + b"\r\n"

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- parser


@FUZZ
@given(data=st.binary(max_size=400), cuts=cut_points)
def test_arbitrary_bytes_give_replies_or_protocol_error_only(data: bytes, cuts: list[int]) -> None:
    with hang_guard():
        parse_stream(chunks(data, cuts), **LIMITS)
        parse_stream(chunks(data, cuts))  # the default limits too


@FUZZ
@given(data=hostile, cuts=cut_points)
@example(data=MAP_KEYED_BY_A_MAP, cuts=[])
def test_resp_shaped_noise_gives_replies_or_protocol_error_only(
    data: bytes, cuts: list[int]
) -> None:
    with hang_guard():
        parse_stream(chunks(data, cuts), **LIMITS)
        parse_stream([data[i : i + 1] for i in range(len(data))], **LIMITS)


# RESP3 allows any type as a map key; the parser makes aggregates hashable, all the way
# down: an array becomes a tuple, a map a tuple of (key, value) pairs, a set a frozenset (a
# set of unhashable elements comes as a list, so as a tuple). Exact values, types included.
KEYED_BY_AN_AGGREGATE = {
    "map keyed by an empty map": (MAP_KEYED_BY_A_MAP, {(): 1}, None),
    "map keyed by a map": (b"%1\r\n%1\r\n+a\r\n:1\r\n:2\r\n", {(("a", 1),): 2}, None),
    "map keyed by a map holding an array": (
        b"%1\r\n%1\r\n+a\r\n*2\r\n:1\r\n:2\r\n:3\r\n",
        {(("a", (1, 2)),): 3},
        None,
    ),
    "map keyed by a set": (MAP_KEYED_BY_A_SET, {frozenset({2}): 1}, None),
    "map keyed by a set of two": (
        b"%1\r\n~2\r\n+x\r\n:2\r\n+v\r\n",
        {frozenset({"x", 2}): "v"},
        None,
    ),
    "map keyed by a set of an array": (b"%1\r\n~1\r\n*0\r\n:1\r\n", {((),): 1}, None),
    "map keyed by an array holding a map of a set": (
        b"%1\r\n*2\r\n:1\r\n%1\r\n+k\r\n~1\r\n:5\r\n+v\r\n",
        {(1, (("k", frozenset({5})),)): "v"},
        None,
    ),
    "attribute keyed by an empty map": (ATTRIBUTE_KEYED_BY_A_MAP, "OK", {(): 1}),
    "attribute keyed by a map": (
        b"|1\r\n%1\r\n+a\r\n:1\r\n~1\r\n:2\r\n:7\r\n",
        7,
        {(("a", 1),): {2}},
    ),
}


@pytest.mark.parametrize(
    "data, reply, attributes", list(KEYED_BY_AN_AGGREGATE.values()), ids=list(KEYED_BY_AN_AGGREGATE)
)
def test_map_keyed_by_an_unhashable_aggregate(data: bytes, reply: Any, attributes: Any) -> None:
    for parts in ([data], [data[i : i + 1] for i in range(len(data))]):
        parser = ReplyParser()
        got = NEED_DATA
        for part in parts:
            parser.feed(part)
            got = parser.next_reply()
        assert_same(got, reply)
        assert_same(parser.attributes, attributes, "attributes")
        assert parser.buffered == 0


def outcome(parts: list[bytes], **limits: Any) -> tuple[list[Any], list[Any], str | None]:
    return parse_stream(parts, **limits)


@FUZZ
@given(data=st.one_of(hostile, st.binary(max_size=200)), cuts=cut_points)
@example(data=LONG_LINE, cuts=[36])
def test_chunking_never_changes_the_outcome(data: bytes, cuts: list[int]) -> None:
    with hang_guard():
        whole = outcome([data], **LIMITS)
        cut = outcome(chunks(data, cuts), **LIMITS)
        bytewise = outcome([data[i : i + 1] for i in range(len(data))], **LIMITS)
    # The replies before any error are the same, and so is the error (or its absence).
    assert_same(cut[0], whole[0], "replies (chunked)")
    assert_same(bytewise[0], whole[0], "replies (byte by byte)")
    assert_same(cut[1], whole[1], "pushes (chunked)")
    assert cut[2] == whole[2]
    assert bytewise[2] == whole[2]


@FUZZ
@given(data=st.one_of(hostile, st.binary(max_size=200)))
def test_chunking_never_changes_the_outcome_within_the_line_limit(data: bytes) -> None:
    # The same property with the default limits (no line in this input reaches them).
    with hang_guard():
        whole = outcome([data])
        bytewise = outcome([data[i : i + 1] for i in range(len(data))])
    assert_same(bytewise[0], whole[0], "replies (byte by byte)")
    assert bytewise[2] == whole[2]


def parse_all(parts: list[bytes]) -> list[Any]:
    parser = ReplyParser()
    replies = list(complete_replies(parser, parts))
    assert parser.buffered == 0
    return replies


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(values=st.lists(resp_values, min_size=1, max_size=3))
def test_valid_replies_cut_at_every_boundary_parse_the_same(values: list[Any]) -> None:
    data = b"".join(encode(v) for v in values)
    if len(data) > 1500:  # keeps the quadratic loop below quick
        data = encode(values[0])
        values = values[:1]
    with hang_guard(30):
        for i in range(len(data) + 1):
            assert_same(parse_all([data[:i], data[i:]]), values, f"cut at {i}")
        assert_same(parse_all([data[i : i + 1] for i in range(len(data))]), values, "bytewise")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"$536870912\r\n", id="bulk-at-the-default-limit"),
        pytest.param(b"*4294967296\r\n", id="array-at-the-default-limit"),
        pytest.param(b"%2147483648\r\n", id="map-of-2G-pairs"),
        pytest.param(b"~4294967296\r\n", id="set-at-the-default-limit"),
        pytest.param(b"*1\r\n" * 250 + b"$536870912\r\n", id="nested-then-bulk"),
        pytest.param(b"=536870912\r\ntxt:", id="verbatim"),
        pytest.param(b"!536870912\r\nERR ", id="bulk-error"),
    ],
)
def test_announced_lengths_allocate_nothing(header: bytes) -> None:
    tracemalloc.start()
    try:
        parser = ReplyParser()
        parser.feed(header)
        assert parser.next_reply() is NEED_DATA
        for _ in range(100):  # trickling payload in keeps the buffer at what was sent
            parser.feed(b"x" * 100)
            assert parser.next_reply() is NEED_DATA
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.buffered <= len(header) + 100 * 100
    assert peak < 4 * 1024 * 1024, f"{peak} bytes for {len(header)} bytes of headers"


def test_a_flood_of_complete_replies_is_not_kept() -> None:
    parser = ReplyParser()
    for _ in range(2000):
        parser.feed(b"$100\r\n" + b"y" * 100 + b"\r\n")
        assert parser.next_reply() == b"y" * 100
    assert parser.buffered == 0
    assert len(parser._buf) == 0  # consumed bytes are dropped, not kept behind the cursor


# --------------------------------------------------------------------------- KV state machine

KEYS = ["a", "ab", "b", "a:b", "a\x00", "a\U0010ffff", "é", "k*", "k?", "[k]", "\\", "%_"]
PREFIXES = ["", "a", "a:", "k", "k*", "[", "\\", "%", "é", "a\U0010ffff", "zz"]
TTL = 600_000  # ten minutes: never runs out during a test

keys_st = st.sampled_from(KEYS)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=6,
)
counters = st.integers(min_value=-1000, max_value=1000)
MISSING = object()


def same(got: Any, want: Any) -> bool:
    """Equality that tells True from 1 and 1.0 from 1 (JSON does)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    return bool(got == want)


def check(got: Any, want: Any, what: str) -> None:
    assert same(got, want), f"{what}: got {got!r}, the model says {want!r}"


class KVModelMachine(RuleBasedStateMachine):
    """A store of one adapter against a dict: key -> (value, has a TTL)."""

    open_store: Callable[[str], jexkv.KVStore]  # set by the subclass of each adapter

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, tuple[Any, bool]] = {}
        # A namespace of its own per run (with glob characters: Redis must escape them).
        self.kv = self.open_store(f"fz{uuid.uuid4().hex[:10]}*?[:")

    def teardown(self) -> None:
        self.kv.close()

    @initialize()
    def starts_empty(self) -> None:
        check(list(self.kv.keys()), [], "keys() of a new namespace")

    @rule(key=keys_st, value=json_values, mode=st.sampled_from(["", "nx", "xx"]), ttl=st.booleans())
    def set(self, key: str, value: Any, mode: str, ttl: bool) -> None:
        written = self.kv.set(
            key, value, ttl_ms=TTL if ttl else None, nx=mode == "nx", xx=mode == "xx"
        )
        want = not (
            (mode == "nx" and key in self.model) or (mode == "xx" and key not in self.model)
        )
        check(written, want, f"set({key!r}, {mode or 'plain'})")
        if want:
            self.model[key] = (value, ttl)

    @rule(key=keys_st)
    def get(self, key: str) -> None:
        want = self.model[key][0] if key in self.model else MISSING
        got = self.kv.get(key, MISSING)
        assert got is MISSING if want is MISSING else same(got, want), (key, got, want)

    @rule(keys=st.lists(keys_st, max_size=4))
    def delete(self, keys: list[str]) -> None:
        want = len({k for k in keys if k in self.model})
        check(self.kv.delete(*keys), want, f"delete{tuple(keys)!r}")
        for k in keys:
            self.model.pop(k, None)

    @rule(key=keys_st)
    def exists(self, key: str) -> None:
        check(self.kv.exists(key), key in self.model, f"exists({key!r})")

    @rule(key=keys_st, amount=counters, ttl=st.booleans())
    def incr(self, key: str, amount: int, ttl: bool) -> None:
        ttl_ms = TTL if ttl else None
        if key in self.model and type(self.model[key][0]) is not int:
            with pytest.raises(jexkv.WrongTypeError):
                self.kv.incr(key, amount, ttl_ms=ttl_ms)
            return
        old, had_ttl = self.model.get(key, (0, None))
        check(self.kv.incr(key, amount, ttl_ms=ttl_ms), old + amount, f"incr({key!r})")
        self.model[key] = (old + amount, ttl if had_ttl is None else had_ttl)

    @rule(key=keys_st)
    def pop(self, key: str) -> None:
        got = self.kv.pop(key, MISSING)
        if key in self.model:
            check(got, self.model.pop(key)[0], f"pop({key!r})")
        else:
            assert got is MISSING, f"pop({key!r}) of a missing key gave {got!r}"

    @rule(keys=st.lists(keys_st, max_size=5))
    def get_many(self, keys: list[str]) -> None:
        want = {k: self.model[k][0] for k in keys if k in self.model}
        check(self.kv.get_many(keys), want, f"get_many({keys!r})")

    @rule(mapping=st.dictionaries(keys_st, json_values, max_size=4), ttl=st.booleans())
    def set_many(self, mapping: dict[str, Any], ttl: bool) -> None:
        check(self.kv.set_many(mapping, ttl_ms=TTL if ttl else None), None, "set_many")
        for k, v in mapping.items():
            self.model[k] = (v, ttl)

    @rule(prefix=st.sampled_from(PREFIXES))
    def keys(self, prefix: str) -> None:
        got = list(self.kv.keys(prefix))
        assert len(got) == len(set(got)), f"keys({prefix!r}) listed a key twice: {got!r}"
        want = sorted(k for k in self.model if k.startswith(prefix))
        check(sorted(got), want, f"keys({prefix!r})")

    @rule(key=keys_st)
    def ttl_ms(self, key: str) -> None:
        got = self.kv.ttl_ms(key)
        if key not in self.model:
            check(got, -2, f"ttl_ms({key!r}) of a missing key")
        elif not self.model[key][1]:
            check(got, -1, f"ttl_ms({key!r}) without a TTL")
        else:
            assert 0 < got <= TTL, f"ttl_ms({key!r}) = {got}"

    @rule(key=keys_st)
    def expire(self, key: str) -> None:
        check(self.kv.expire(key, TTL), key in self.model, f"expire({key!r})")
        if key in self.model:
            self.model[key] = (self.model[key][0], True)

    @rule(key=keys_st)
    def persist(self, key: str) -> None:
        want = key in self.model and self.model[key][1]
        check(self.kv.persist(key), want, f"persist({key!r})")
        if key in self.model:
            self.model[key] = (self.model[key][0], False)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        check(self.kv.clear(), len(self.model), "clear()")
        self.model.clear()

    @invariant()
    def every_key_agrees(self) -> None:
        want = {k: v for k, (v, _) in self.model.items()}
        check(self.kv.get_many(KEYS), want, "get_many(every key)")


STATEFUL = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def run_machine(open_store: Callable[[str], jexkv.KVStore]) -> None:
    machine = type("KVModel", (KVModelMachine,), {"open_store": staticmethod(open_store)})
    run_state_machine_as_test(machine, settings=STATEFUL)


def test_memory_kv_against_a_dict() -> None:
    run_machine(lambda namespace: jexkv.open_kv("memory://", namespace=namespace))


def test_sqlite_kv_against_a_dict(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    run_machine(lambda namespace: jexkv.open_kv(url, namespace=namespace))


def test_redis_kv_against_a_dict(redis_server: Any) -> None:
    url = redis_server.url(db=11)
    run_machine(lambda namespace: jexkv.open_kv(url, namespace=namespace))


def test_redis_cluster_kv_against_a_dict(redis_cluster: Any) -> None:
    """Keys spread over the slots of three nodes: get_many, set_many, delete and clear are
    split by slot, keys() scans every node."""
    url = redis_cluster.url()
    run_machine(lambda namespace: jexkv.open_kv(url, namespace=namespace))


def test_redis_sentinel_kv_against_a_dict(redis_sentinel: Any) -> None:
    url = redis_sentinel.url(db=11)
    run_machine(lambda namespace: jexkv.open_kv(url, namespace=namespace))
