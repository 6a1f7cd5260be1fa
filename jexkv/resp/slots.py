"""The slots of a Redis Cluster, without I/O: hashing keys, reading the slot map, following
redirections. The sync and the asyncio cluster clients share it; only their I/O differs.

Rules:
* A key's slot is CRC16 of the key, or of its non-empty ``{hash tag}``, modulo 16384; a
  command's slot is its first key's (a script's: its first KEYS entry).
* The map comes from ``CLUSTER SHARDS`` (``CLUSTER SLOTS`` before Redis 7). ``MOVED`` updates
  one slot (a second one in a row asks for the whole map again), ``ASK`` names the node to
  send that one command to, after ``ASKING``; ``TRYAGAIN`` and ``CLUSTERDOWN`` are waited
  out with backoff (the clients bound the whole by their retry window).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from jexkv.errors import ConfigError
from jexkv.resp.errors import ServerError
from jexkv.resp.protocol import ErrorReply, as_text
from jexkv.resp.retry import Backoff

__all__ = [
    "ClusterSettings",
    "MAX_REDIRECTS",
    "Redirects",
    "REDIRECT_CODES",
    "SLOTS",
    "SlotMap",
    "command_slot",
    "key_slot",
    "parse_shards",
    "parse_slots",
    "redirected",
]

SLOTS = 16384
MAX_REDIRECTS = 16
REDIRECT_CODES = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"})
# Commands with no key, and the ones whose key is not their first argument.
_KEYLESS = frozenset(
    "PING INFO CONFIG CLIENT SCRIPT FLUSHDB FLUSHALL DBSIZE TIME ECHO COMMAND CLUSTER ROLE"
    " SCAN RANDOMKEY".split()
)
_SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16_TABLE = _crc16_table()


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster hashes with."""
    crc, table = 0, _CRC16_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key``: of its ``{tag}`` when it has a non-empty one."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return _crc16(data) % SLOTS


def _get(entry: Any, name: str) -> Any:
    """A field of a RESP3 map (a dict) or of a RESP2 flat list of pairs."""
    if isinstance(entry, dict):
        for key, value in entry.items():
            if as_text(key) == name:
                return value
        return None
    pairs = list(entry)
    for i in range(0, len(pairs) - 1, 2):
        if as_text(pairs[i]) == name:
            return pairs[i + 1]
    return None


def parse_shards(reply: Any) -> list[tuple[int, int, str, int]]:
    """(first slot, last slot, host, port) of each primary's ranges, from CLUSTER SHARDS."""
    ranges = []
    for shard in reply:
        slots = [int(s) for s in _get(shard, "slots") or []]
        primary = None
        for node in _get(shard, "nodes") or []:
            if as_text(_get(node, "role")) == "master" and as_text(_get(node, "health")) != "fail":
                primary = node
        if primary is None:
            continue
        host = as_text(_get(primary, "ip") or _get(primary, "endpoint"))
        port = int(_get(primary, "port") or _get(primary, "tls-port"))
        ranges += [(slots[i], slots[i + 1], host, port) for i in range(0, len(slots), 2)]
    return ranges


def parse_slots(reply: Any) -> list[tuple[int, int, str, int]]:
    """The same from CLUSTER SLOTS (servers before 7.0)."""
    return [(int(r[0]), int(r[1]), as_text(r[2][0]), int(r[2][1])) for r in reply]


def command_slot(args: Sequence[Any]) -> int | None:
    """The slot a command's keys live in (its first key's), or None for a keyless one."""
    if not args:
        return None
    name = as_text(args[0]).upper()
    if name in _SCRIPT_COMMANDS:
        return key_slot(args[3]) if len(args) > 3 and int(args[2]) > 0 else None
    if name in _KEYLESS or len(args) < 2:
        return None
    if name in ("XREAD", "XREADGROUP"):  # the keys follow STREAMS
        words = [as_text(arg).upper() if isinstance(arg, (str, bytes)) else "" for arg in args]
        if "STREAMS" in words and words.index("STREAMS") + 1 < len(args):
            return key_slot(args[words.index("STREAMS") + 1])
        return None
    return key_slot(args[1])


Address = tuple[str, int]


class SlotMap:
    """Which primary serves each slot, as last read; ``stale`` when it must be read again."""

    def __init__(self, seeds: Sequence[Address]) -> None:
        self.seeds = list(seeds)
        self.table: list[Address | None] = [None] * SLOTS
        self.stale = True

    def load(self, ranges: list[tuple[int, int, str, int]]) -> None:
        """A map read from a node (parse_shards or parse_slots)."""
        table: list[Address | None] = [None] * SLOTS
        for first, last, host, port in ranges:
            for slot in range(first, last + 1):
                table[slot] = (host, port)
        self.table = table
        self.stale = False

    def lookup(self, slot: int | None) -> Address | None:
        """The primary of ``slot`` (any primary for None), or None if the map has none."""
        if slot is not None:
            return self.table[slot]
        return next((a for a in self.table if a is not None), None)

    def any(self) -> Address:
        """A primary, or the first seed while the map is empty."""
        return self.lookup(None) or self.seeds[0]

    def primaries(self) -> list[Address]:
        return list(dict.fromkeys(a for a in self.table if a is not None))

    def follow(self, code: str, message: str, host: str, moved: int) -> Address:
        """The node a ``MOVED`` or ``ASK`` reply names (``host`` when it names none): the map is
        updated for MOVED (marked stale when ``moved`` says it moved again); for ASK, the
        node to send that one command to after ASKING."""
        slot, where = message.split()
        target_host, _, port = where.rpartition(":")
        target = (target_host or host, int(port))
        if code == "MOVED":
            if moved > 1:
                self.stale = True  # moved again: read the whole map
            else:
                self.table[int(slot)] = target
        return target


class Redirects:
    """The redirections of one routed command: ``MOVED`` and ``ASK`` followed (at most
    MAX_REDIRECTS MOVED ones), ``TRYAGAIN`` and ``CLUSTERDOWN`` waited out with a backoff from
    10 ms to 200 ms, all within ``window_s`` of the start."""

    __slots__ = ("_backoff", "_map", "_moved")

    def __init__(self, slot_map: SlotMap, window_s: float) -> None:
        self._map = slot_map
        self._moved = 0
        self._backoff = Backoff(window_s, 0.01, 0.2)

    def after(self, error: ServerError, host: str) -> tuple[float, Address | None] | None:
        """What to do after ``error`` from the node at ``host``: (pause before sending again,
        the node to send the one command to after ASKING), or None: raise it."""
        code = error.code
        if code in ("MOVED", "ASK"):
            # An ASK comes back after each TRYAGAIN while a slot migrates: those are bounded
            # by the retry window; MOVED ones by their count.
            self._moved += code == "MOVED"
            if self._moved > MAX_REDIRECTS or self._backoff.expired:
                return None
            target = self._map.follow(code, error.message, host, self._moved)
            return 0.0, target if code == "ASK" else None
        if code in ("TRYAGAIN", "CLUSTERDOWN"):
            pause = self._backoff.next()
            if pause is None:
                return None
            if code == "CLUSTERDOWN":
                self._map.stale = True
            return pause, None
        return None


def redirected(reply: Any) -> bool:
    """A pipelined command's reply that says it did not run here: it is sent again alone."""
    return isinstance(reply, ErrorReply) and reply.code in REDIRECT_CODES


_S = TypeVar("_S", bound="ClusterSettings")


class ClusterSettings:
    """What the sync and the asyncio cluster clients share apart from I/O: seeds and node
    options (checked), the slot map, and the keyless parts of the Redis interface."""

    def __init__(
        self,
        seeds: Sequence[Address],
        *,
        retry_window_s: float = 10.0,
        **node_options: Any,
    ) -> None:
        if not seeds:
            raise ConfigError("a Redis Cluster needs at least one seed node")
        if node_options.get("db", 0) != 0:
            raise ConfigError("a Redis Cluster has only database 0")
        self._seeds = list(seeds)
        self._options = node_options
        self.socket_timeout = float(node_options.get("socket_timeout", 5.0))
        self.retry_window_s = retry_window_s
        self._map = SlotMap(seeds)
        self._closed = False

    @classmethod
    def from_url(cls: type[_S], url: str, **options: Any) -> _S:
        """``redis+cluster://[[user]:password@]host:port[,host:port…][?options]``."""
        from jexkv.resp.url import parse_cluster_url

        seeds, kwargs = parse_cluster_url(url, options)
        return cls(seeds, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} " + ",".join(f"{h}:{p}" for h, p in self._seeds) + ">"

    def _candidates(self, known: Iterable[Address]) -> list[Address]:
        """The nodes to read the map from, in random order: known ones, then the seeds."""
        candidates = list(dict.fromkeys([*known, *self._seeds]))
        random.shuffle(candidates)
        return candidates

    def _redirects(self) -> Redirects:
        return Redirects(self._map, self.retry_window_s)

    def note_redirect(self, reply: ErrorReply | ServerError) -> None:
        """A MOVED seen elsewhere (a blocked command): the map is read again next time."""
        if reply.code == "MOVED":
            self._map.stale = True

    command_slot = staticmethod(command_slot)

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` grouped by slot (first-seen order): one multi-key command per group."""
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot(key), []).append(key)
        return list(groups.values())
