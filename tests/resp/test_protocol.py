"""The sans-IO RESP2/RESP3 parser and command packer (jexkv.resp.protocol).

Every parser case goes through ``check_reply`` (after h11's ``tr()``): the bytes are fed
whole, one byte at a time (NEED_DATA until the last byte), and followed by the bytes of a
next reply, which must then come out as the next reply.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jexkv
from jexkv.resp.protocol import (
    NEED_DATA,
    ErrorReply,
    ReplyParser,
    VerbatimString,
    pack_command,
    pack_commands,
)

# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class Err:
    """What an ErrorReply must look like (the test never builds an ErrorReply itself)."""

    code: str
    message: str
    full: str | None = None  # str(reply); by default "CODE message"
    bulk: bool = False  # how the hypothesis encoder writes it: '!' rather than '-'

    @property
    def text(self) -> str:
        if self.full is not None:
            return self.full
        return f"{self.code} {self.message}" if self.message else self.code


@dataclasses.dataclass(frozen=True)
class Verb:
    """What a VerbatimString must look like."""

    format: str
    text: str


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def verbatim(fmt: bytes, text: bytes) -> bytes:
    payload = fmt + b":" + text
    return b"=%d\r\n%s\r\n" % (len(payload), payload)


def assert_same(got: Any, want: Any, path: str = "reply") -> None:
    """Deep equality that also checks types (True is not 1, 10.0 is not 10, list is not tuple)."""
    if isinstance(want, Err):
        assert isinstance(got, ErrorReply), f"{path}: {got!r} is not an ErrorReply"
        assert (got.code, got.message) == (want.code, want.message), f"{path}: {got!r}"
        assert str(got) == want.text, f"{path}: str() is {str(got)!r}"
        return
    if isinstance(want, Verb):
        assert isinstance(got, VerbatimString), f"{path}: {got!r} is not a VerbatimString"
        assert isinstance(got, str)
        assert got == want.text, f"{path}: {got!r}"
        assert got.kind == want.format, f"{path}: format {got.kind!r}"
        return
    if isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), f"{path}: {got!r} is not nan"
        return
    assert type(got) is type(want), (
        f"{path}: got {type(got).__name__} {got!r}, expected {type(want).__name__} {want!r}"
    )
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        got_keys = {k: k for k in got}
        for k, v in want.items():
            assert k in got_keys, f"{path}: key {k!r} missing from {got!r}"
            assert_same(got_keys[k], k, f"{path} key {k!r}")
            assert_same(got[k], v, f"{path}[{k!r}]")
    elif isinstance(want, (set, frozenset)):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        got_items = {x: x for x in got}
        for x in want:
            assert x in got_items, f"{path}: {x!r} missing from {got!r}"
            assert_same(got_items[x], x, f"{path} item {x!r}")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def complete_replies(parser: ReplyParser, chunks: Iterable[bytes]) -> Iterator[Any]:
    """Feed ``chunks`` to ``parser`` one after the other, yielding every reply complete after
    each (``parser.attributes`` is the reply's while the caller has it)."""
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            reply = parser.next_reply()
            if reply is NEED_DATA:
                break
            yield reply


# A following reply used to check that nothing past the end of a reply is consumed.
FOLLOW = b"*2\r\n$3\r\nfoo\r\n:7\r\n"
FOLLOW_VALUE = [b"foo", 7]


def check_reply(data: bytes, expected: Any, attributes: Any = None) -> None:
    # 1. fed whole
    p = ReplyParser()
    p.feed(data)
    assert_same(p.next_reply(), expected)
    assert_same(p.attributes, attributes, "attributes")
    assert p.next_reply() is NEED_DATA

    # 2. fed one byte at a time: NEED_DATA until the very last byte
    p = ReplyParser()
    assert p.next_reply() is NEED_DATA
    for i in range(len(data) - 1):
        p.feed(data[i : i + 1])
        got = p.next_reply()
        assert got is NEED_DATA, f"reply {got!r} complete after {i + 1} of {len(data)} bytes"
    p.feed(data[-1:])
    assert_same(p.next_reply(), expected)
    assert_same(p.attributes, attributes, "attributes")
    assert p.next_reply() is NEED_DATA

    # 3. followed by all, or the first bytes, of the next reply
    for cut in (len(FOLLOW), 1, 6):
        p = ReplyParser()
        p.feed(data + FOLLOW[:cut])
        assert_same(p.next_reply(), expected)
        assert_same(p.attributes, attributes, "attributes")
        if cut < len(FOLLOW):
            assert p.next_reply() is NEED_DATA
            p.feed(FOLLOW[cut:])
        assert_same(p.next_reply(), FOLLOW_VALUE, "following reply")
        assert p.attributes is None
        assert p.next_reply() is NEED_DATA


def check_malformed(data: bytes, **limits: Any) -> None:
    # fed whole
    p = ReplyParser(**limits)
    p.feed(data)
    with pytest.raises(jexkv.ProtocolError) as info:
        p.next_reply()
    assert isinstance(info.value, jexkv.JexkvError)
    # and broken for good, whatever comes next
    with pytest.raises(jexkv.ProtocolError):
        p.next_reply()
    with pytest.raises(jexkv.ProtocolError):
        p.feed(b"+OK\r\n")
        p.next_reply()
    with pytest.raises(jexkv.ProtocolError):
        p.next_reply()

    # fed one byte at a time: raises by the last byte at the latest, never returns a reply
    p = ReplyParser(**limits)
    with pytest.raises(jexkv.ProtocolError):
        for i in range(len(data)):
            p.feed(data[i : i + 1])
            got = p.next_reply()
            assert got is NEED_DATA, f"malformed input gave {got!r}"


# --------------------------------------------------------------------------- replies

BIG = 3492890328409238509324850943850943825024385
ATTR_REPLY = (
    b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
    b"*2\r\n:2039123\r\n:9543892\r\n"
)
ATTR_VALUE = {"key-popularity": {b"a": 0.1923, b"b": 0.0012}}

REPLY_CASES = [
    # simple strings
    pytest.param(b"+OK\r\n", "OK", id="simple"),
    pytest.param(b"+\r\n", "", id="simple-empty"),
    pytest.param(b"+h\xc3\xa9llo w\xc3\xb6rld\r\n", "héllo wörld", id="simple-utf8"),
    pytest.param(b"+a\xff\xfeb\r\n", "a\ufffd\ufffdb", id="simple-bad-utf8-replaced"),
    # simple errors
    pytest.param(b"-ERR unknown command 'FOO'\r\n", Err("ERR", "unknown command 'FOO'"), id="err"),
    pytest.param(
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        Err("WRONGTYPE", "Operation against a key holding the wrong kind of value"),
        id="err-wrongtype",
    ),
    pytest.param(b"-NOSCRIPT\r\n", Err("NOSCRIPT", ""), id="err-code-only"),
    pytest.param(b"-\r\n", Err("ERR", "", full=""), id="err-empty"),
    # integers and big numbers
    pytest.param(b":0\r\n", 0, id="int-zero"),
    pytest.param(b":42\r\n", 42, id="int"),
    pytest.param(b":-1\r\n", -1, id="int-negative"),
    pytest.param(b":9223372036854775807\r\n", 2**63 - 1, id="int-max"),
    pytest.param(b":-9223372036854775808\r\n", -(2**63), id="int-min"),
    pytest.param(b"(%d\r\n" % BIG, BIG, id="bignum"),
    pytest.param(b"(-%d\r\n" % BIG, -BIG, id="bignum-negative"),
    pytest.param(b"(0\r\n", 0, id="bignum-zero"),
    # bulk strings
    pytest.param(b"$5\r\nhello\r\n", b"hello", id="bulk"),
    pytest.param(b"$0\r\n\r\n", b"", id="bulk-empty"),
    pytest.param(b"$-1\r\n", None, id="bulk-null"),
    pytest.param(bulk(b"a\r\nb\r\n"), b"a\r\nb\r\n", id="bulk-crlf-inside"),
    pytest.param(bulk(b"\r\n"), b"\r\n", id="bulk-only-crlf"),
    pytest.param(bulk(bytes(range(256))), bytes(range(256)), id="bulk-all-bytes"),
    pytest.param(bulk(b"\r\n\r\n$3\r\n*1\r\n"), b"\r\n\r\n$3\r\n*1\r\n", id="bulk-resp-inside"),
    # null, booleans, doubles
    pytest.param(b"_\r\n", None, id="null"),
    pytest.param(b"#t\r\n", True, id="true"),
    pytest.param(b"#f\r\n", False, id="false"),
    pytest.param(b",1.5\r\n", 1.5, id="double"),
    pytest.param(b",-2.25\r\n", -2.25, id="double-negative"),
    pytest.param(b",10\r\n", 10.0, id="double-integral"),
    pytest.param(b",1.5e+300\r\n", 1.5e300, id="double-exponent"),
    pytest.param(b",inf\r\n", math.inf, id="double-inf"),
    pytest.param(b",-inf\r\n", -math.inf, id="double-minus-inf"),
    pytest.param(b",nan\r\n", math.nan, id="double-nan"),
    # bulk errors and verbatim strings
    pytest.param(
        b"!21\r\nSYNTAX invalid syntax\r\n", Err("SYNTAX", "invalid syntax"), id="blob-err"
    ),
    pytest.param(
        bulk(b"ERR a\r\nb").replace(b"$", b"!", 1), Err("ERR", "a\r\nb"), id="blob-err-crlf"
    ),
    pytest.param(b"!0\r\n\r\n", Err("ERR", "", full=""), id="blob-err-empty"),
    pytest.param(b"=15\r\ntxt:Some string\r\n", Verb("txt", "Some string"), id="verbatim"),
    pytest.param(verbatim(b"mkd", b"# a\r\nb"), Verb("mkd", "# a\r\nb"), id="verbatim-crlf"),
    pytest.param(verbatim(b"txt", b""), Verb("txt", ""), id="verbatim-empty"),
    pytest.param(verbatim(b"txt", "café".encode()), Verb("txt", "café"), id="verbatim-utf8"),
    # arrays
    pytest.param(b"*0\r\n", [], id="array-empty"),
    pytest.param(b"*-1\r\n", None, id="array-null"),
    pytest.param(b"*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n", [b"foo", b"bar"], id="array"),
    pytest.param(
        b"*5\r\n:1\r\n+two\r\n$5\r\nthree\r\n,4.5\r\n#t\r\n",
        [1, "two", b"three", 4.5, True],
        id="array-mixed",
    ),
    pytest.param(b"*3\r\n$-1\r\n*-1\r\n_\r\n", [None, None, None], id="array-of-nulls"),
    pytest.param(
        b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-ERR World\r\n",
        [[1, 2, 3], ["Hello", Err("ERR", "World")]],
        id="array-nested",
    ),
    pytest.param(b"*1\r\n*1\r\n*1\r\n*0\r\n", [[[[]]]], id="array-deep"),
    pytest.param(
        b"*3\r\n+OK\r\n-WRONGTYPE bad key\r\n:1\r\n",
        ["OK", Err("WRONGTYPE", "bad key"), 1],
        id="array-exec-with-error",
    ),
    pytest.param(b"*2\r\n$0\r\n\r\n*0\r\n", [b"", []], id="array-with-empties"),
    # maps
    pytest.param(b"%0\r\n", {}, id="map-empty"),
    pytest.param(b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", {"first": 1, "second": 2}, id="map"),
    pytest.param(
        b"%2\r\n$1\r\nk\r\n*2\r\n:1\r\n%1\r\n:2\r\n_\r\n:5\r\n~1\r\n#f\r\n",
        {b"k": [1, {2: None}], 5: {False}},
        id="map-nested",
    ),
    pytest.param(b"%1\r\n*2\r\n:1\r\n:2\r\n+v\r\n", {(1, 2): "v"}, id="map-array-key"),
    pytest.param(b"%1\r\n*0\r\n+v\r\n", {(): "v"}, id="map-empty-array-key"),
    # sets
    pytest.param(b"~0\r\n", set(), id="set-empty"),
    pytest.param(b"~3\r\n+a\r\n:1\r\n$1\r\nb\r\n", {"a", 1, b"b"}, id="set"),
    pytest.param(b"~2\r\n*1\r\n:1\r\n:2\r\n", [[1], 2], id="set-unhashable-is-list"),
    pytest.param(b"~1\r\n%0\r\n", [{}], id="set-of-map-is-list"),
]


@pytest.mark.parametrize(("data", "expected"), REPLY_CASES)
def test_reply(data: bytes, expected: Any) -> None:
    check_reply(data, expected)


def test_reply_with_attributes() -> None:
    check_reply(ATTR_REPLY, [2039123, 9543892], attributes=ATTR_VALUE)


def test_attributes_before_a_scalar_reply() -> None:
    check_reply(b"|1\r\n+ttl\r\n:3600\r\n$5\r\nvalue\r\n", b"value", attributes={"ttl": 3600})


def test_attributes_are_reset_by_the_next_reply() -> None:
    p = ReplyParser()
    assert p.attributes is None
    p.feed(ATTR_REPLY + b"+OK\r\n")
    assert_same(p.next_reply(), [2039123, 9543892])
    assert_same(p.attributes, ATTR_VALUE)
    assert p.next_reply() == "OK"
    assert p.attributes is None


def test_attributes_inside_an_array_do_not_change_the_value() -> None:
    check_reply_value_only(b"*2\r\n:1\r\n|1\r\n+a\r\n+b\r\n:2\r\n", [1, 2])


def check_reply_value_only(data: bytes, expected: Any) -> None:
    p = ReplyParser()
    p.feed(data + FOLLOW)
    assert_same(p.next_reply(), expected)
    assert_same(p.next_reply(), FOLLOW_VALUE)
    p = ReplyParser()
    for i in range(len(data) - 1):
        p.feed(data[i : i + 1])
        assert p.next_reply() is NEED_DATA
    p.feed(data[-1:])
    assert_same(p.next_reply(), expected)


def test_need_data_is_a_sentinel_not_none() -> None:
    assert NEED_DATA is not None
    p = ReplyParser()
    assert p.next_reply() is NEED_DATA
    p.feed(b"")
    assert p.next_reply() is NEED_DATA
    p.feed(b"$-1\r\n")
    assert p.next_reply() is None
    assert p.next_reply() is NEED_DATA


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_feed_accepts_bytes_like(kind: Any) -> None:
    p = ReplyParser()
    p.feed(kind(b"*2\r\n$3\r\nfoo\r\n"))
    assert p.next_reply() is NEED_DATA
    p.feed(kind(b":1\r\n+OK\r\n"))
    assert_same(p.next_reply(), [b"foo", 1])
    assert_same(p.next_reply(), "OK")
    assert p.next_reply() is NEED_DATA


def test_fed_bytearray_can_be_reused_by_the_caller() -> None:
    buf = bytearray(b"$3\r\nabc\r\n")
    p = ReplyParser()
    p.feed(buf)
    buf[:] = b"XXXXXXXXX"
    assert_same(p.next_reply(), b"abc")


def test_error_reply_equality_is_by_code_and_message() -> None:
    p = ReplyParser()
    p.feed(b"-ERR x\r\n-ERR x\r\n!5\r\nERR x\r\n-ERR y\r\n-FOO x\r\n")
    a, b, c, d, e = (p.next_reply() for _ in range(5))
    assert a == b
    assert a == c
    assert a != d
    assert a != e


# --------------------------------------------------------------------------- push frames

PUSH = b">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n"
PUSH_VALUE = ["message", "chan", b"hello"]
PUSH2 = b">4\r\n+pmessage\r\n+p*\r\n+chan\r\n*2\r\n:1\r\n_\r\n"
PUSH2_VALUE = ["pmessage", "p*", "chan", [1, None]]


def test_push_goes_to_pushes_deque() -> None:
    p = ReplyParser()
    assert isinstance(p.pushes, collections.deque)
    assert len(p.pushes) == 0
    p.feed(PUSH)
    assert p.next_reply() is NEED_DATA
    assert_same(list(p.pushes), [PUSH_VALUE])


def test_push_goes_to_push_handler() -> None:
    seen: list[Any] = []
    p = ReplyParser(push_handler=seen.append)
    p.feed(PUSH + PUSH2)
    assert p.next_reply() is NEED_DATA
    assert_same(seen, [PUSH_VALUE, PUSH2_VALUE])
    assert len(p.pushes) == 0


@pytest.mark.parametrize("handler", [False, True])
def test_push_between_two_replies_does_not_disturb_them(handler: bool) -> None:
    data = b":1\r\n" + PUSH + ATTR_REPLY + PUSH2 + b"*2\r\n+a\r\n:2\r\n" + PUSH
    want_replies = [1, [2039123, 9543892], ["a", 2]]
    want_attrs = [None, ATTR_VALUE, None]
    want_pushes = [PUSH_VALUE, PUSH2_VALUE, PUSH_VALUE]

    def run(chunks: list[bytes]) -> None:
        seen: list[Any] = []
        p = ReplyParser(push_handler=seen.append) if handler else ReplyParser()
        replies, attrs = [], []
        for got in complete_replies(p, chunks):
            replies.append(got)
            attrs.append(p.attributes)
        assert_same(replies, want_replies)
        assert_same(attrs, want_attrs, "attributes")
        assert_same(seen if handler else list(p.pushes), want_pushes, "pushes")
        if handler:
            assert len(p.pushes) == 0

    run([data])
    run([data[i : i + 1] for i in range(len(data))])
    run([data[i : i + 7] for i in range(0, len(data), 7)])


# --------------------------------------------------------------------------- malformed

MALFORMED = [
    pytest.param(b"?foo\r\n", id="unknown-type"),
    pytest.param(b"x\r\n", id="unknown-type-letter"),
    pytest.param(b" OK\r\n", id="unknown-type-space"),
    pytest.param(b"\r\n", id="empty-line"),
    pytest.param(b"*2\r\n:1\r\n?x\r\n", id="unknown-type-in-array"),
    pytest.param(b":abc\r\n", id="int-letters"),
    pytest.param(b":12a\r\n", id="int-trailing-letter"),
    pytest.param(b":\r\n", id="int-empty"),
    pytest.param(b":1.5\r\n", id="int-float"),
    pytest.param(b":--1\r\n", id="int-double-minus"),
    pytest.param(b"(12a\r\n", id="bignum-letters"),
    pytest.param(b"$abc\r\n", id="bulk-len-letters"),
    pytest.param(b"$1a\r\n", id="bulk-len-trailing-letter"),
    pytest.param(b"$\r\n", id="bulk-len-empty"),
    pytest.param(b"*x\r\n", id="array-count-letters"),
    pytest.param(b"%1.5\r\n", id="map-count-float"),
    pytest.param(b"~z\r\n", id="set-count-letters"),
    pytest.param(b"$-2\r\n", id="bulk-len-minus-two"),
    pytest.param(b"$-100\r\n", id="bulk-len-negative"),
    pytest.param(b"!-2\r\n", id="blob-err-len-negative"),
    pytest.param(b"=-2\r\n", id="verbatim-len-negative"),
    pytest.param(b"*-2\r\n", id="array-count-minus-two"),
    pytest.param(b"%-2\r\n", id="map-count-negative"),
    pytest.param(b"~-5\r\n", id="set-count-negative"),
    pytest.param(b"$5\r\nhelloXY", id="bulk-no-crlf"),
    pytest.param(b"$3\r\nhello\r\n", id="bulk-longer-than-len"),
    pytest.param(b"$5\r\nhello\n\r", id="bulk-lf-cr"),
    pytest.param(b"$5\r\nhello\rX", id="bulk-cr-only"),
    pytest.param(b"!3\r\nERRxx", id="blob-err-no-crlf"),
    pytest.param(b"=7\r\ntxt:abcXY", id="verbatim-no-crlf"),
    pytest.param(b"*1\r\n$1\r\nab\r\n", id="bulk-no-crlf-in-array"),
    pytest.param(b"#x\r\n", id="bool-x"),
    pytest.param(b"#\r\n", id="bool-empty"),
    pytest.param(b"#true\r\n", id="bool-word"),
    pytest.param(b",abc\r\n", id="double-letters"),
    pytest.param(b",\r\n", id="double-empty"),
    pytest.param(b",1.5.2\r\n", id="double-two-dots"),
    pytest.param(b"$?\r\n;4\r\nHell\r\n;0\r\n", id="streamed-bulk"),
    pytest.param(b"*?\r\n:1\r\n.\r\n", id="streamed-array"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed(data: bytes) -> None:
    check_malformed(data)


def test_good_reply_before_malformed_one_is_still_returned() -> None:
    p = ReplyParser()
    p.feed(b"+OK\r\n:1\r\n?bad\r\n")
    assert p.next_reply() == "OK"
    assert p.next_reply() == 1
    with pytest.raises(jexkv.ProtocolError):
        p.next_reply()
    with pytest.raises(jexkv.ProtocolError):
        p.next_reply()


# --------------------------------------------------------------------------- limits


def test_max_bulk_len() -> None:
    check_reply_limited(bulk(b"0123456789"), b"0123456789", max_bulk_len=10)
    p = ReplyParser(max_bulk_len=10)
    p.feed(b"$10\r\n")
    assert p.next_reply() is NEED_DATA
    # refused as soon as the header is in, before any payload
    for header in (b"$11\r\n", b"!11\r\n", b"=11\r\n", b"*1\r\n$11\r\n", b"$1000000\r\n"):
        check_malformed(header, max_bulk_len=10)


def test_default_max_bulk_len_refuses_a_huge_bulk_at_once() -> None:
    p = ReplyParser()
    p.feed(b"$536870912\r\n")  # exactly 512 MiB: allowed, waits for the payload
    assert p.next_reply() is NEED_DATA
    check_malformed(b"$536870913\r\n")
    check_malformed(b"$1073741824\r\n")  # 1 GiB
    check_malformed(b"$99999999999999999999999\r\n")


def test_max_aggregate_len() -> None:
    check_reply_limited(b"*3\r\n:1\r\n:2\r\n:3\r\n", [1, 2, 3], max_aggregate_len=3)
    check_reply_limited(
        b"%3\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n", {1: 1, 2: 2, 3: 3}, max_aggregate_len=3
    )
    check_reply_limited(b"~3\r\n:1\r\n:2\r\n:3\r\n", {1, 2, 3}, max_aggregate_len=3)
    for header in (b"*4\r\n", b"%4\r\n", b"~4\r\n", b">4\r\n", b"|4\r\n", b"*1\r\n*4\r\n"):
        check_malformed(header, max_aggregate_len=3)


def test_default_max_aggregate_len_refuses_a_huge_count_at_once() -> None:
    check_malformed(b"*4294967297\r\n")
    check_malformed(b"%99999999999999999999\r\n")


def test_max_depth() -> None:
    check_reply_limited(b"*1\r\n*1\r\n:1\r\n", [[1]], max_depth=3)
    check_reply_limited(b"%1\r\n+k\r\n~1\r\n:1\r\n", {"k": {1}}, max_depth=3)
    check_malformed(b"*1\r\n" * 5 + b":1\r\n", max_depth=3)
    check_malformed(b"*1\r\n%1\r\n+k\r\n~1\r\n*1\r\n*1\r\n:1\r\n", max_depth=3)


def test_100000_deep_nesting_raises_protocol_error_not_recursion_error() -> None:
    data = b"*1\r\n" * 100_000 + b":1\r\n"
    p = ReplyParser()
    p.feed(data)
    with pytest.raises(jexkv.ProtocolError):
        p.next_reply()


def test_100000_deep_nesting_within_max_depth_parses_without_recursion() -> None:
    depth = 100_000
    p = ReplyParser(max_depth=depth + 10)
    p.feed(b"*1\r\n" * depth + b":7\r\n")
    got = p.next_reply()
    for _ in range(depth):
        assert type(got) is list and len(got) == 1
        got = got[0]
    assert got == 7


def test_max_line_len() -> None:
    check_reply_limited(b"+hello world\r\n", "hello world", max_line_len=16)
    check_reply_limited(b":123456789\r\n", 123456789, max_line_len=16)
    for data in (b"+" + b"a" * 100, b":" + b"1" * 100, b"$" + b"1" * 100, b"*" + b"0" * 100):
        check_malformed(data, max_line_len=16)


def test_default_max_line_len() -> None:
    check_reply_limited(b"+" + b"a" * 1000 + b"\r\n", "a" * 1000)
    check_malformed(b"+" + b"a" * 70_000)


def check_reply_limited(data: bytes, expected: Any, **limits: Any) -> None:
    p = ReplyParser(**limits)
    p.feed(data + data)
    assert_same(p.next_reply(), expected)
    assert_same(p.next_reply(), expected)
    assert p.next_reply() is NEED_DATA
    p = ReplyParser(**limits)
    for i in range(len(data)):
        assert p.next_reply() is NEED_DATA
        p.feed(data[i : i + 1])
    assert_same(p.next_reply(), expected)


# --------------------------------------------------------------------------- volume


def test_many_replies_in_one_chunk_come_out_in_order() -> None:
    cases = [(param.values[0], param.values[1]) for param in REPLY_CASES] * 5
    p = ReplyParser()
    p.feed(b"".join(data + (PUSH if i % 7 == 0 else b"") for i, (data, _) in enumerate(cases)))
    for i, (_, expected) in enumerate(cases):
        got = p.next_reply()
        assert got is not NEED_DATA, f"ran out at reply {i}"
        assert_same(got, expected, f"reply {i}")
    assert p.next_reply() is NEED_DATA
    assert len(p.pushes) == len(range(0, len(cases), 7))


def test_10000_element_array_fed_in_1kb_chunks() -> None:
    items = [b"item-%d" % i for i in range(10_000)]
    data = b"*10000\r\n" + b"".join(bulk(x) for x in items)
    p = ReplyParser()
    got: Any = NEED_DATA
    for start in range(0, len(data), 1024):
        assert got is NEED_DATA
        p.feed(data[start : start + 1024])
        got = p.next_reply()
    assert got is not NEED_DATA
    assert got == items
    assert p.next_reply() is NEED_DATA


# --------------------------------------------------------------------------- pack_command

PACK_CASES = [
    pytest.param(("PING",), b"*1\r\n$4\r\nPING\r\n", id="one-arg"),
    pytest.param(
        ("SET", "key", "value"),
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
        id="str",
    ),
    pytest.param(("GET", b"k\x00\xff"), b"*2\r\n$3\r\nGET\r\n$3\r\nk\x00\xff\r\n", id="bytes"),
    pytest.param((b"SET", b"a\r\nb"), b"*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n", id="bytes-crlf"),
    pytest.param(("SET", bytearray(b"xy")), b"*2\r\n$3\r\nSET\r\n$2\r\nxy\r\n", id="bytearray"),
    pytest.param(("SET", memoryview(b"xyz")), b"*2\r\n$3\r\nSET\r\n$3\r\nxyz\r\n", id="memoryview"),
    pytest.param(
        ("SET", memoryview(b"-abc-")[1:4]),
        b"*2\r\n$3\r\nSET\r\n$3\r\nabc\r\n",
        id="memoryview-slice",
    ),
    pytest.param(("INCRBY", "n", 42), b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n42\r\n", id="int"),
    pytest.param((0,), b"*1\r\n$1\r\n0\r\n", id="int-zero"),
    pytest.param((-7,), b"*1\r\n$2\r\n-7\r\n", id="int-negative"),
    pytest.param((2**70,), b"*1\r\n$22\r\n1180591620717411303424\r\n", id="int-big"),
    pytest.param((1.5,), b"*1\r\n$3\r\n1.5\r\n", id="float"),
    pytest.param((0.1,), b"*1\r\n$3\r\n0.1\r\n", id="float-repr"),
    pytest.param((-2.0,), b"*1\r\n$4\r\n-2.0\r\n", id="float-integral"),
    pytest.param((1e100,), b"*1\r\n$6\r\n1e+100\r\n", id="float-exponent"),
    pytest.param((math.inf,), b"*1\r\n$3\r\ninf\r\n", id="float-inf"),
    pytest.param((-math.inf,), b"*1\r\n$4\r\n-inf\r\n", id="float-minus-inf"),
    pytest.param((math.nan,), b"*1\r\n$3\r\nnan\r\n", id="float-nan"),
    pytest.param(("héllo",), b"*1\r\n$6\r\nh\xc3\xa9llo\r\n", id="unicode-latin"),
    pytest.param(("日本",), b"*1\r\n$6\r\n\xe6\x97\xa5\xe6\x9c\xac\r\n", id="unicode-cjk"),
    pytest.param(("🙂",), b"*1\r\n$4\r\n\xf0\x9f\x99\x82\r\n", id="unicode-emoji"),
    pytest.param(("SET", "k", ""), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", id="empty-str"),
    pytest.param(("SET", b""), b"*2\r\n$3\r\nSET\r\n$0\r\n\r\n", id="empty-bytes"),
]


@pytest.mark.parametrize(("args", "expected"), PACK_CASES)
def test_pack_command(args: tuple[Any, ...], expected: bytes) -> None:
    got = pack_command(*args)
    assert type(got) is bytes
    assert got == expected
    # and our own parser reads it back as an array of bulk strings
    p = ReplyParser()
    p.feed(got)
    reply = p.next_reply()
    assert type(reply) is list
    assert len(reply) == len(args)
    assert all(type(x) is bytes for x in reply)


@pytest.mark.parametrize(
    "bad",
    [True, False, None, object(), {"a": 1}, [b"x"], {b"x"}, 1j],
    ids=["true", "false", "none", "object", "dict", "list", "set", "complex"],
)
def test_pack_command_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        pack_command(bad)
    with pytest.raises(TypeError):
        pack_command("SET", "k", bad)


def test_pack_command_needs_arguments() -> None:
    with pytest.raises(ValueError):
        pack_command()


def test_pack_commands_concatenates() -> None:
    commands = [("SET", "a", 1), ("GET", "a"), (b"INCRBYFLOAT", "a", 0.5)]
    got = pack_commands(commands)
    assert type(got) is bytes
    assert got == b"".join(pack_command(*c) for c in commands)
    assert got == (
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
        b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\na\r\n$3\r\n0.5\r\n"
    )
    assert pack_commands([("PING",)]) == pack_command("PING")


def test_pack_commands_errors() -> None:
    with pytest.raises(TypeError):
        pack_commands([("SET", "a", "1"), ("GET", None)])
    with pytest.raises(ValueError):
        pack_commands([("PING",), ()])


# --------------------------------------------------------------------------- round trip


def encode(value: Any) -> bytes:
    """A RESP3 encoder written for the test, independent of the library."""
    if value is None:
        return b"_\r\n"
    if value is True:
        return b"#t\r\n"
    if value is False:
        return b"#f\r\n"
    if isinstance(value, int):
        prefix = b":" if -(2**63) <= value < 2**63 else b"("
        return prefix + str(value).encode() + b"\r\n"
    if isinstance(value, float):
        return b"," + repr(value).encode() + b"\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, str):
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, Err):
        text = value.text.encode()
        if value.bulk:
            return b"!%d\r\n%s\r\n" % (len(text), text)
        return b"-" + text + b"\r\n"
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n" % len(value) + b"".join(encode(x) for x in value)
    if isinstance(value, dict):
        return b"%%%d\r\n" % len(value) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return b"~%d\r\n" % len(value) + b"".join(encode(x) for x in value)
    raise AssertionError(f"cannot encode {value!r}")


line_text = st.text(max_size=20).map(lambda s: s.replace("\r", "").replace("\n", ""))
word = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), st.sampled_from("éß日本🙂")
    ),
    min_size=1,
    max_size=8,
)
errors = st.builds(
    Err,
    code=st.from_regex(r"[A-Z]{1,10}", fullmatch=True),
    message=st.lists(word, max_size=4).map(" ".join),
    bulk=st.booleans(),
)
integers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**300),
    st.integers(min_value=-(2**300), max_value=-(2**63) - 1),
)
hashable_scalars = st.one_of(integers, st.binary(max_size=10), line_text)
keys = st.one_of(
    hashable_scalars,
    st.lists(st.one_of(integers, st.binary(max_size=5)), max_size=3).map(tuple),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary(max_size=40),
    line_text,
    errors,
)
resp_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=4),
        st.sets(hashable_scalars, max_size=4),
    ),
    max_leaves=25,
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(value=resp_values, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_round_trip(value: Any, cuts: list[int]) -> None:
    data = encode(value)

    # whole, followed by another reply
    p = ReplyParser()
    p.feed(data + FOLLOW)
    assert_same(p.next_reply(), value)
    assert_same(p.next_reply(), FOLLOW_VALUE)
    assert p.next_reply() is NEED_DATA

    # in chunks cut at hypothesis-drawn points
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    p = ReplyParser()
    fed = 0
    for start, end in zip(points, points[1:]):
        p.feed(data[start:end])
        fed = end
        got = p.next_reply()
        if fed < len(data):
            assert got is NEED_DATA, f"reply complete after {fed} of {len(data)} bytes"
    assert_same(got, value)
    assert p.next_reply() is NEED_DATA
