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

# The type byte that starts every RESP element.
SIMPLE_STRING = ord("+")
SIMPLE_ERROR = ord("-")
INTEGER = ord(":")
BULK_STRING = ord("$")
ARRAY = ord("*")
# RESP3
NULL = ord("_")
BOOLEAN = ord("#")
DOUBLE = ord(",")
BIG_NUMBER = ord("(")
BULK_ERROR = ord("!")
VERBATIM = ord("=")
MAP = ord("%")
SET = ord("~")
ATTRIBUTE = ord("|")
PUSH = ord(">")

_OPENED: Any = object()
"""What an aggregate header's reader returns: a frame was pushed, its elements come next."""


class _Frame:
    """An aggregate being read: its type byte, how many elements are still due, its items."""

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


def _as_list(items: list[Any]) -> Any:
    return items


def _as_set(items: list[Any]) -> Any:
    try:
        return set(items)
    except TypeError:  # unhashable members (arrays, maps): kept as a list
        return items


def _as_dict(items: list[Any]) -> Any:
    pairs = iter(items)  # key, value, key, value, ...
    return {_hashable(k): v for k, v in zip(pairs, pairs)}


_BUILDERS: dict[int, Callable[[list[Any]], Any]] = {
    ARRAY: _as_list,
    PUSH: _as_list,
    SET: _as_set,
    MAP: _as_dict,
    ATTRIBUTE: _as_dict,
}
"""How a complete aggregate's items become its value, by type byte."""


class ReplyParser:
    """Turns bytes from a Redis server into replies, one at a time.

    ``next_reply`` finds the next line, and the reader of its type byte (``_READERS``)
    turns it into a value: a simple type from the line alone, a bulk type from the length
    on the line and the payload after it, an aggregate header by pushing a frame on the
    stack. A value goes to the aggregate on top of the stack, and every aggregate it
    completes is finished in one place (``next_reply``'s last loop); a value that ends the
    stack is the reply.
    """

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

    def next_reply(self) -> Any:
        """The next complete reply, or NEED_DATA."""
        if self._broken is not None:
            raise self._broken
        buf, stack = self._buf, self._stack
        readers, max_line_len = _READERS, self.max_line_len
        while True:
            # One element: its line, read by the reader of its type byte.
            pos = self._pos
            end = buf.find(b"\r\n", pos)
            if end < 0:
                # Checked the same whether the line came whole or in pieces (a CR alone at
                # the end may be the first half of its CRLF).
                if len(buf) - pos - buf.endswith(b"\r") > max_line_len:
                    raise self._fail(f"a line longer than {max_line_len} bytes")
                return self._need_data()
            if end - pos > max_line_len:
                raise self._fail(f"a line longer than {max_line_len} bytes")
            value = readers[buf[pos]](self, buf[pos + 1 : end], end + 2)
            if value is NEED_DATA:
                return self._need_data()
            # Hand the value to the aggregate on top of the stack (an aggregate header hands
            # nothing), then finish every aggregate that is complete: an empty one at once,
            # the others with their last element. The one place an aggregate ends.
            while stack:
                frame = stack[-1]
                if value is not _OPENED:
                    frame.items.append(value)
                    frame.left -= 1
                if frame.left:
                    break
                stack.pop()
                value = _BUILDERS[frame.kind](frame.items)
                if frame.kind == ATTRIBUTE:  # not an element: the next reply's attributes
                    self._pending_attributes = value
                    break
                if frame.kind == PUSH and not stack:  # a push frame: never a reply
                    self._push(value)
                    break
            else:
                self.attributes, self._pending_attributes = self._pending_attributes, None
                self._compact()
                return value

    # -- readers: one per type byte. Each takes the line after the type byte and the
    # offset just past its CRLF, and returns the value (moving ``_pos`` past the element),
    # NEED_DATA (a bulk payload not all here yet; nothing consumed), or _OPENED (an
    # aggregate header: a frame is on the stack).

    def _read_simple_string(self, line: bytearray, nxt: int) -> Any:
        self._pos = nxt
        return line.decode("utf-8", "replace")

    def _read_simple_error(self, line: bytearray, nxt: int) -> Any:
        self._pos = nxt
        return ErrorReply(line.decode("utf-8", "replace"))

    def _read_integer(self, line: bytearray, nxt: int) -> Any:  # : and ( (big number)
        try:
            value = int(line)
        except ValueError:
            raise self._fail(f"an integer is not an integer: {bytes(line)[:40]!r}") from None
        self._pos = nxt
        return value

    def _read_null(self, line: bytearray, nxt: int) -> Any:
        if line:
            raise self._fail(f"a null with content {bytes(line)[:40]!r}")
        self._pos = nxt
        return None

    def _read_boolean(self, line: bytearray, nxt: int) -> Any:
        if line == b"t":
            value = True
        elif line == b"f":
            value = False
        else:
            raise self._fail(f"a boolean that is not t or f: {bytes(line)[:40]!r}")
        self._pos = nxt
        return value

    def _read_double(self, line: bytearray, nxt: int) -> Any:
        try:
            value = float(line)
        except ValueError:
            raise self._fail(f"a double that is not a number: {bytes(line)[:40]!r}") from None
        self._pos = nxt
        return value

    def _read_bulk_string(self, line: bytearray, nxt: int) -> Any:
        """The payload as bytes, or None for ``$-1`` (a null bulk string; the other bulk
        types call this, and for them a length of -1 is malformed)."""
        try:
            size = int(line)
        except ValueError:
            if line == b"?":
                raise self._fail("streamed strings are not supported") from None
            raise self._fail(f"a bulk length is not an integer: {bytes(line)[:40]!r}") from None
        if size < 0:
            if size == -1:
                self._pos = nxt
                return None
            raise self._fail(f"a negative bulk length {size}")
        if size > self.max_bulk_len:
            raise self._fail(f"a bulk of {size} bytes (limit {self.max_bulk_len})")
        buf = self._buf
        stop = nxt + size
        if len(buf) < stop + 2:
            return NEED_DATA
        if not buf.startswith(b"\r\n", stop):
            raise self._fail("a bulk string not followed by CRLF")
        if size <= 4096:  # small: a slice is faster than a view
            data = bytes(buf[nxt:stop])
        else:
            with memoryview(buf) as view:  # one copy, and the view is released
                data = bytes(view[nxt:stop])
        self._pos = stop + 2
        return data

    def _read_bulk_error(self, line: bytearray, nxt: int) -> Any:
        data = self._read_bulk_string(line, nxt)
        if data is None:
            raise self._fail("a negative bulk length -1")
        if data is NEED_DATA:
            return data
        return ErrorReply(data.decode("utf-8", "replace"))

    def _read_verbatim(self, line: bytearray, nxt: int) -> Any:  # "txt:" then the text
        data = self._read_bulk_string(line, nxt)
        if data is None:
            raise self._fail("a negative bulk length -1")
        if data is NEED_DATA:
            return data
        if len(data) < 4 or data[3:4] != b":":
            raise self._fail("a verbatim string without its format")
        value = VerbatimString(data[4:].decode("utf-8", "replace"))
        value.kind = data[:3].decode("ascii", "replace")
        return value

    def _read_array(self, line: bytearray, nxt: int) -> Any:
        return self._open(ARRAY, line, nxt, 1)

    def _read_set(self, line: bytearray, nxt: int) -> Any:
        return self._open(SET, line, nxt, 1)

    def _read_push(self, line: bytearray, nxt: int) -> Any:
        return self._open(PUSH, line, nxt, 1)

    def _read_map(self, line: bytearray, nxt: int) -> Any:
        return self._open(MAP, line, nxt, 2)  # key, value, key, value, ...

    def _read_attribute(self, line: bytearray, nxt: int) -> Any:
        return self._open(ATTRIBUTE, line, nxt, 2)  # a map

    def _read_unknown(self, line: bytearray, nxt: int) -> Any:
        kind = self._buf[self._pos]  # _pos is still on the type byte
        raise self._fail(f"unknown type byte {bytes([kind])!r}")

    def _open(self, kind: int, line: bytearray, nxt: int, per_element: int) -> Any:
        """An aggregate header: push the frame of its ``count * per_element`` items."""
        if line == b"?":
            raise self._fail("streamed aggregates are not supported")
        try:
            count = int(line)
        except ValueError:
            raise self._fail(
                f"an aggregate length is not an integer: {bytes(line)[:40]!r}"
            ) from None
        self._pos = nxt
        if count < 0:
            if count == -1 and kind == ARRAY:  # *-1: null array
                return None
            raise self._fail(f"a negative aggregate length {count}")
        if count > self.max_aggregate_len:
            raise self._fail(f"{count} elements (limit {self.max_aggregate_len})")
        if len(self._stack) >= self.max_depth:
            raise self._fail(f"nesting deeper than {self.max_depth}")
        self._stack.append(_Frame(kind, count * per_element))
        return _OPENED

    # -- the rest ----------------------------------------------------------------------

    def _fail(self, why: str) -> ProtocolError:
        self._broken = ProtocolError(f"malformed reply from the server: {why}")
        return self._broken

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


_Reader = Callable[[ReplyParser, bytearray, int], Any]

_READER_OF: dict[int, _Reader] = {
    SIMPLE_STRING: ReplyParser._read_simple_string,
    SIMPLE_ERROR: ReplyParser._read_simple_error,
    INTEGER: ReplyParser._read_integer,
    BULK_STRING: ReplyParser._read_bulk_string,
    ARRAY: ReplyParser._read_array,
    NULL: ReplyParser._read_null,
    BOOLEAN: ReplyParser._read_boolean,
    DOUBLE: ReplyParser._read_double,
    BIG_NUMBER: ReplyParser._read_integer,
    BULK_ERROR: ReplyParser._read_bulk_error,
    VERBATIM: ReplyParser._read_verbatim,
    MAP: ReplyParser._read_map,
    SET: ReplyParser._read_set,
    ATTRIBUTE: ReplyParser._read_attribute,
    PUSH: ReplyParser._read_push,
}

_READERS: list[_Reader] = [_READER_OF.get(kind, ReplyParser._read_unknown) for kind in range(256)]
"""The dispatch table: the reader of each type byte (``_read_unknown`` for the others)."""
