"""Values in and out of storage, and the checks on keys, TTLs and counters.

Rule: a value is stored as what JSON can carry and comes back as JSON would
decode it, on every adapter. Anything JSON cannot carry exactly (a set, an
object, NaN, a dict with non-str keys) is refused with SerializationError
*before* any write. Keys and times are checked before any I/O.

JSON is written as UTF-8 text, not ASCII escapes (as BullMQ's JSON.stringify writes it),
so a large non-ASCII value costs its UTF-8 size. A lone surrogate (a str that is not
text: UTF-8 cannot carry it) is kept escaped (``\\udc80``), as JSON.stringify does, so
such a value still round-trips; in keys, ids and names it is refused (:func:`check_text`).
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import math
import re
import reprlib
from typing import Any, Callable, NoReturn

from jexkv.errors import InvalidArgument, InvalidArgumentType, SerializationError

__all__ = [
    "JsonText",
    "check_amount",
    "check_int",
    "NX_AND_XX",
    "check_key",
    "check_prefix",
    "check_text",
    "check_ttl",
    "decode",
    "printable",
    "encode",
    "freeze",
    "thaw",
]

_decoder = json.JSONDecoder()
_scan = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]  # C scanner, no wrapping


def _decode(text: str) -> Any:
    """Decode JSON text; the common case (compact text, as jexkv writes it) takes
    one C call, anything else (whitespace around it, junk) the full decoder."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _decoder.decode(text)  # raises the usual JSONDecodeError
    if end != len(text):
        return _decoder.decode(text)
    return value


def _no_default(value: object) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not a JSON type")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _make_encoder() -> Callable[[object], str]:
    """Compact JSON text, refusing NaN; non-ASCII as itself (see the module's rule).

    The C encoder is built once and reused: ``JSONEncoder.encode`` builds a new one
    per call, which costs more than the encoding of a small dict. It keeps no
    circular-reference table (that table would be shared between threads), so a
    circular value surfaces as RecursionError, which :func:`encode` reports.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode  # ASCII
    chunks = c_make_encoder(
        None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(value: object) -> str:
        # Lone surrogates only occur inside JSON strings, where an escape means the same.
        return printable(join(chunks(value, 0)))

    return encode


_encode = _make_encoder()
_encode_str = json.encoder.encode_basestring  # a str as a JSON string, non-ASCII as itself

# Types that are immutable and map to themselves through JSON.
_SCALARS = frozenset({str, int, bool, type(None)})


def check_text(value: str, what: str) -> str:
    """Return ``value``; ValueError if it holds a lone surrogate (UTF-8 cannot carry it,
    so SQLite and Redis could not store it): refused alike on every adapter."""
    if not isinstance(value, str) or value.isascii():
        return value  # a type is checked where the value is used
    found = _SURROGATE.search(value)
    if found is None:
        return value
    raise InvalidArgument(
        f"{what} {value!r} holds a lone surrogate (U+{ord(found.group()):04X} at index "
        f"{found.start()}), which is not text: UTF-8 cannot carry it"
    )


def printable(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udc80``): for text jexkv
    stores but did not choose, such as a handler's error message and traceback, which UTF-8
    (and so SQLite and Redis) could not carry otherwise."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty str of text; raise TypeError/ValueError otherwise."""
    if type(key) is str and key and key.isascii():
        return key
    if not isinstance(key, str):
        raise InvalidArgumentType(f"key must be a str, got {type(key).__name__}: {key!r}")
    if not key:
        raise InvalidArgument("key must be a non-empty str")
    return check_text(key, "key")  # a str subclass: accepted as the text it holds


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` (of ``keys(prefix)``) if it is a str of text (empty is fine)."""
    if not isinstance(prefix, str):
        raise InvalidArgumentType(f"prefix must be a str, got {type(prefix).__name__}")
    return check_text(prefix, "prefix")


NX_AND_XX = "set: nx and xx exclude each other"


def check_int(value: object, name: str, minimum: int = 0, unit: str = "") -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``; raise
    ValueError otherwise, whatever its type: every count and time in milliseconds
    (``ttl_ms``, ``delay_ms``, ``attempts``, ``priority``, …) is checked by this one rule."""
    if type(value) is int and value >= minimum:
        return value
    what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    raise InvalidArgument(f"{name} must be {what}{unit}, got {type(value).__name__}: {value!r}")


def check_ttl(ttl_ms: object, name: str = "ttl_ms") -> int:
    """Return ``ttl_ms`` if it is a positive int (not a bool); raise ValueError otherwise."""
    if type(ttl_ms) is int and ttl_ms > 0:
        return ttl_ms
    return check_int(ttl_ms, name, 1, " of milliseconds")


def check_amount(amount: object) -> int:
    """Return ``amount`` if it is an int (not a bool); raise TypeError otherwise."""
    if type(amount) is int:
        return amount
    raise InvalidArgumentType(f"amount must be an int, got {type(amount).__name__}: {amount!r}")


_NOT_FINITE = "NaN and infinities are not JSON"


def _refuse(value: object, why: str) -> NoReturn:
    text = reprlib.repr(value)  # bounded in length and depth, whatever the value
    raise SerializationError(f"value is not JSON-serialisable ({why}): {text}")


def _check_containers(item: Any, path: set[int], root: object) -> None:
    """Refuse non-str dict keys (json.dumps would silently turn int, float, bool and
    None keys into strings) and a value that contains itself (it would never end).
    ``path`` holds the containers above ``item``: sharing one list twice is fine."""
    if id(item) in path:
        _refuse(root, "it contains itself")
    if isinstance(item, dict):
        for k in item:
            if not isinstance(k, str):
                _refuse(root, f"dict key {k!r} is not a str")
        children = item.values()
    else:
        children = item
    path.add(id(item))
    for child in children:
        if isinstance(child, (dict, list, tuple)):
            _check_containers(child, path, root)
    path.discard(id(item))


def encode(value: object) -> str:
    """The JSON text of ``value``; SerializationError if JSON cannot carry it exactly."""
    if value is None:
        return "null"  # what most job handlers return
    if type(value) is str:  # one copy of a large text, not the encoder's two
        return printable(_encode_str(value))
    try:
        if isinstance(value, (dict, list, tuple)):
            _check_containers(value, set(), value)
        return _encode(value)
    except SerializationError:
        raise
    except (TypeError, ValueError) as exc:
        # The C encoder's words for NaN vary by Python version: one text on every adapter.
        _refuse(value, _NOT_FINITE if "Out of range float" in str(exc) else str(exc))
    except RecursionError:
        _refuse(value, "circular or nested too deeply")


_CHUNK = 1 << 20


def _utf8_in_chunks(data: bytes) -> str:
    """``data.decode("utf-8")`` at about twice the text's size at peak: CPython's one-shot
    decoder regrows its buffer for each wider character it meets (up to 6x the size)."""
    step = codecs.getincrementaldecoder("utf-8")().decode
    view = memoryview(data)
    parts = [step(view[i : i + _CHUNK]) for i in range(0, len(data), _CHUNK)]
    parts.append(step(b"", True))
    return "".join(parts)


def decode(text: str | bytes, key: str | None = None) -> Any:
    """The value of a JSON text written by :func:`encode` (str, or UTF-8 bytes).

    Text that is not JSON (another client wrote it) raises SerializationError naming
    ``key`` when one is given, so the caller learns which entry is foreign.
    """
    try:
        if not isinstance(text, str):
            # Rebound, so that bytes no caller holds any more are freed before the parse.
            if len(text) > _CHUNK and not text.isascii():
                text = _utf8_in_chunks(text)
            else:
                text = text.decode("utf-8")
        return _decode(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        where = "a stored value" if key is None else f"the value of key {key!r}"
        raise SerializationError(
            f"{where} is not JSON text (another client wrote it?): {reprlib.repr(text)}"
        ) from exc


class JsonText(str):
    """A value kept as its JSON text in memory (nested containers and odd types)."""

    __slots__ = ()


def freeze(value: object) -> Any:
    """A snapshot of ``value`` that later changes by the caller cannot reach.

    The memory adapter keeps what this returns. Immutable scalars are kept as they
    are, a flat dict or list of scalars as a shallow copy (cheap to copy again on
    the way out), anything else as its JSON text. Refuses what :func:`encode` refuses.
    """
    t = type(value)
    if t in _SCALARS:
        return value
    if t is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value
        _refuse(value, _NOT_FINITE)
    if t is dict:
        for k, v in value.items():  # type: ignore[attr-defined]
            tv = type(v)
            if type(k) is not str or not (tv in _SCALARS or (tv is float and math.isfinite(v))):
                return JsonText(encode(value))
        return value.copy()  # type: ignore[attr-defined]
    if t is list or t is tuple:
        for v in value:  # type: ignore[attr-defined]
            tv = type(v)
            if not (tv in _SCALARS or (tv is float and math.isfinite(v))):
                return JsonText(encode(value))
        return list(value)  # type: ignore[call-overload]
    return JsonText(encode(value))


def thaw(stored: Any) -> Any:
    """A fresh copy of what :func:`freeze` kept: the caller may change it freely."""
    t = type(stored)
    if t is dict or t is list:
        return stored.copy()
    if t is JsonText:
        return _decode(stored)
    return stored
