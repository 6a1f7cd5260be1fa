"""RedisClient: what the KV and queue adapters use of a Redis client, as a typing.Protocol.

Rule: the adapters (jexkv/redis/) talk to Redis through this surface alone, never through a
raw connection: Redis, SentinelRedis and RedisCluster each offer it, so an adapter never
asks which one it has. A cluster routes each command by its keys' slot; on one server the
slot methods are trivial (one group, one node).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from jexkv.resp.blocking import Blocker
from jexkv.resp.client import Script

__all__ = ["PipelineLike", "RedisClient"]


class PipelineLike(Protocol):
    """Commands queued, then sent together (a transaction keeps to one slot on a cluster)."""

    def execute_command(self, *args: Any) -> PipelineLike: ...

    def execute(self, raise_on_error: bool = True) -> list[Any]: ...


class RedisClient(Protocol):
    """A thread-safe client of one Redis deployment (a server, a primary, a cluster)."""

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        """One command (routed by its first key on a cluster); its reply, or ServerError."""

    def register_script(self, lua: str) -> Script:
        """A Lua script run with EVALSHA, loaded on NOSCRIPT (on each node of a cluster)."""

    def pipeline(self, transaction: bool = False) -> PipelineLike: ...

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` in groups that one multi-key command or script may take."""

    def scan_iter(self, match: str, count: int = 500) -> Iterator[bytes]:
        """SCAN MATCH over every primary, page by page (a key may come twice)."""

    def blocker(self, client_name: str | None = None) -> Blocker:
        """A connection of its own for blocking pops, ended early with ``interrupt()``."""

    def close(self) -> None: ...
