"""RESP2 and RESP3 without I/O: commands to bytes, bytes to replies.

Rule: nothing here touches a socket (the shape of h11's ``receive_data`` /
``next_event`` / ``NEED_DATA``): ``feed`` bytes in, take replies out with
``next_reply`` until it says ``NEED_DATA``. Error replies are values, so a
pipeline can collect them; the client turns them into exceptions. Push frames
never come out of ``next_reply``. Malformed input raises ProtocolError, after
which the parser refuses to go on (its stream can no longer be trusted). The
parser keeps an explicit stack, never recursion, and checks every length
against its limits before allocating anything.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any, Callable

from jexkv.errors import ProtocolError

__all__ = [
    "NEED_DATA",
    "as_text",
    "ErrorReply",
    "ReplyParser",
    "VerbatimString",
    "pack_command",
    "pack_commands",
]


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Any = _NeedData()
"""What ``next_reply`` returns while the next reply has not fully arrived."""


class ErrorReply:
    """An error reply (``-ERR …`` or a RESP3 bulk error), as a value."""

    __slots__ = ("code", "message", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        code, _, message = text.partition(" ")
        if code and code.isupper():
            self.code, self.message = code, message
        else:
            self.code, self.message = "ERR", text

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"ErrorReply({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErrorReply):
            return NotImplemented
        return (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class VerbatimString(str):
    """A RESP3 verbatim string; ``kind`` is its three-letter format (``txt``, ``mkd``)."""

    kind: str


# -- commands ------------------------------------------------------------------------


def _arg(arg: object) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    raise TypeError(
        f"a command argument must be str, bytes, int or float, got {type(arg).__name__}"
    )


def as_text(value: Any) -> str:
    """A reply element (bytes from a bulk string, or a number) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pack_args(args: Iterable[object]) -> bytes:
    """Arguments as RESP bulk strings, without the array header (see pack_command)."""
    parts: list[bytes] = []
    append = parts.append
    data: bytes
    for arg in args:
        kind = type(arg)  # the common types first, without a call each
        if kind is str:
            data = arg.encode()  # type: ignore[attr-defined]
        elif kind is bytes:
            data = arg  # type: ignore[assignment]
        elif kind is int:
            data = b"%d" % arg  # type: ignore[str-format]
        else:
            data = _arg(arg)
        append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def pack_command(*args: object) -> bytes:
    """One command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("a command needs at least its name")
    return b"*%d\r\n" % len(args) + pack_args(args)


def pack_commands(commands: Iterable[Iterable[object]]) -> bytes:
    """Many commands in one buffer, for one write."""
    return b"".join(pack_command(*command) for command in commands)


# -- replies -------------------------------------------------------------------------

_AGGREGATES = frozenset(b"*%~>|")  # array, map, set, push, attribute
_BULKS = frozenset(b"$!=")  # bulk string, bulk error, verbatim string


class _Frame:
    """An aggregate being read: its kind, how many elements are still due, its items."""

    __slots__ = ("kind", "left", "items")

    def __init__(self, kind: int, left: int) -> None:
        self.kind, self.left = kind, left
        self.items: list[Any] = []


def _hashable(value: Any) -> Any:
    """A map key as Python can hash it: arrays as tuples, maps as tuples of pairs, sets
    as frozensets (RESP3 allows any type as a key)."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, set):
        return frozenset(value)
    return value


def _build(frame: _Frame) -> Any:
    kind, items = frame.kind, frame.items
    if kind == 0x2A or kind == 0x3E:  # * >
        return items
    if kind == 0x7E:  # ~
        try:
            return set(items)
        except TypeError:
            return items
    pairs = iter(items)  # % and | hold key, value, key, value, ...
    return {_hashable(k): v for k, v in zip(pairs, pairs)}


class ReplyParser:
    """Turns bytes from a Redis server into replies, one at a time."""

    def __init__(
        self,
        *,
        push_handler: Callable[[list[Any]], None] | None = None,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_aggregate_len: int = 2**32,
        max_depth: int = 256,
        max_line_len: int = 65536,
    ) -> None:
        self.push_handler = push_handler
        self.pushes: collections.deque[list[Any]] = collections.deque()
        self.attributes: dict[Any, Any] | None = None
        self.max_bulk_len = max_bulk_len
        self.max_aggregate_len = max_aggregate_len
        self.max_depth = max_depth
        self.max_line_len = max_line_len
        self._buf = bytearray()
        self._pos = 0
        self._stack: list[_Frame] = []
        self._pending_attributes: dict[Any, Any] | None = None
        self._broken: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are not part of a returned reply yet."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the server."""
        self._buf += data

    def _fail(self, why: str) -> ProtocolError:
        self._broken = ProtocolError(f"malformed reply from the server: {why}")
        return self._broken

    def _int(self, text: bytes | bytearray, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self._fail(f"{what} is not an integer: {bytes(text)[:40]!r}") from None

    def next_reply(self) -> Any:
        """The next complete reply, or NEED_DATA."""
        if self._broken is not None:
            raise self._broken
        buf, stack = self._buf, self._stack
        while True:
            # Read one element: a line, or a header line and its bulk payload.
            pos = self._pos
            end = buf.find(b"\r\n", pos)
            if end < 0:
                # Checked the same whether the line came whole or in pieces (a CR alone at
                # the end may be the first half of its CRLF).
                if len(buf) - pos - buf.endswith(b"\r") > self.max_line_len:
                    raise self._fail(f"a line longer than {self.max_line_len} bytes")
                return self._need_data()
            if end - pos > self.max_line_len:
                raise self._fail(f"a line longer than {self.max_line_len} bytes")
            kind = buf[pos]
            line = buf[pos + 1 : end]
            nxt = end + 2
            if kind in _BULKS:
                size = self._int(line, "a bulk length")
                if size == -1 and kind == 0x24:  # $-1: null bulk string
                    value: Any = None
                else:
                    if size < 0:
                        if line == b"?":
                            raise self._fail("streamed strings are not supported")
                        raise self._fail(f"a negative bulk length {size}")
                    if size > self.max_bulk_len:
                        raise self._fail(f"a bulk of {size} bytes (limit {self.max_bulk_len})")
                    if len(buf) < nxt + size + 2:
                        return self._need_data()
                    if buf[nxt + size : nxt + size + 2] != b"\r\n":
                        raise self._fail("a bulk string not followed by CRLF")
                    with memoryview(buf) as view:  # one copy, and the view is released
                        data = bytes(view[nxt : nxt + size])
                    nxt += size + 2
                    if kind == 0x24:  # $
                        value = data
                    elif kind == 0x21:  # !
                        value = ErrorReply(data.decode("utf-8", "replace"))
                    else:  # = verbatim: "txt:" then the text
                        if size < 4 or data[3:4] != b":":
                            raise self._fail("a verbatim string without its format")
                        value = VerbatimString(data[4:].decode("utf-8", "replace"))
                        value.kind = data[:3].decode("ascii", "replace")
            elif kind in _AGGREGATES:
                if line == b"?":
                    raise self._fail("streamed aggregates are not supported")
                count = self._int(line, "an aggregate length")
                self._pos = nxt
                if count == -1 and kind == 0x2A:  # *-1: null array
                    value = None
                elif count < 0:
                    raise self._fail(f"a negative aggregate length {count}")
                elif count > self.max_aggregate_len:
                    raise self._fail(f"{count} elements (limit {self.max_aggregate_len})")
                else:
                    if len(stack) >= self.max_depth:
                        raise self._fail(f"nesting deeper than {self.max_depth}")
                    left = count * 2 if kind in (0x25, 0x7C) else count  # % | hold pairs
                    stack.append(_Frame(kind, left))
                    if left:
                        continue
                    value = _build(stack.pop())
                    if kind == 0x7C:
                        self._pending_attributes = value
                        continue
                    if kind == 0x3E and not stack:
                        self._push(value)
                        continue
            else:
                value = self._simple(kind, line)
            self._pos = nxt
            # Hand the element to its aggregate; finish every aggregate it completes.
            while stack:
                top = stack[-1]
                top.items.append(value)
                top.left -= 1
                if top.left:
                    break
                stack.pop()
                value = _build(top)
                if top.kind == 0x7C:  # attributes: kept aside, not an element
                    self._pending_attributes = value
                    break
                if top.kind == 0x3E and not stack:  # a push frame: never a reply
                    self._push(value)
                    break
            else:
                self.attributes, self._pending_attributes = self._pending_attributes, None
                self._compact()
                return value

    def _simple(self, kind: int, line: bytearray) -> Any:
        if kind == 0x2B:  # +
            return line.decode("utf-8", "replace")
        if kind == 0x2D:  # -
            return ErrorReply(line.decode("utf-8", "replace"))
        if kind == 0x3A or kind == 0x28:  # : (
            return self._int(line, "an integer")
        if kind == 0x5F:  # _
            if line:
                raise self._fail(f"a null with content {bytes(line)[:40]!r}")
            return None
        if kind == 0x23:  # #
            if line == b"t":
                return True
            if line == b"f":
                return False
            raise self._fail(f"a boolean that is not t or f: {bytes(line)[:40]!r}")
        if kind == 0x2C:  # ,
            try:
                return float(line)
            except ValueError:
                raise self._fail(f"a double that is not a number: {bytes(line)[:40]!r}") from None
        raise self._fail(f"unknown type byte {bytes([kind])!r}")

    def _push(self, frame: list[Any]) -> None:
        if self.push_handler is not None:
            self.push_handler(frame)
        else:
            self.pushes.append(frame)

    def _need_data(self) -> Any:
        self._compact()
        return NEED_DATA

    def _compact(self) -> None:
        pos = self._pos
        if pos and (pos == len(self._buf) or pos > 65536):
            del self._buf[:pos]
            self._pos = 0
