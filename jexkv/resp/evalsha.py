"""EvalSha: a Lua script's hash and its calls packed, shared by every client's Script (sync,
asyncio, Cluster); each runs it with EVALSHA and loads it on the first NOSCRIPT answer.

The packed head of each call (EVALSHA, the hash, the keys) is kept per key list, so a script
called again and again on the same keys packs only its arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from jexkv.resp.protocol import pack_args

__all__ = ["EvalSha"]


class EvalSha:
    _HEADS_KEPT = 256

    def __init__(self, lua: str) -> None:
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()
        self._heads: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def packed(self, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
        """The EVALSHA command for these keys and arguments, packed."""
        key_tuple = tuple(keys)
        head = self._heads.get(key_tuple)
        if head is None:
            if len(self._heads) >= self._HEADS_KEPT:
                self._heads.clear()
            packed = pack_args(("EVALSHA", self.sha, len(key_tuple), *key_tuple))
            head = self._heads[key_tuple] = (3 + len(key_tuple), packed)
        return b"*%d\r\n" % (head[0] + len(args)) + head[1] + pack_args(args)
