"""RedisClient: what the KV and queue adapters use of a Redis client, as a typing.Protocol.

Rule: the adapters (jexkv/redis/) talk to Redis through this surface alone, never through a
raw connection: Redis, SentinelRedis and RedisCluster each offer it, so an adapter never
asks which one it has. A cluster routes each command by its keys' slot; on one server the
slot methods are trivial (one group, one node).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from jexkv.resp.blocking import Blocker

if TYPE_CHECKING:
    from jexkv.resp.aio_client import AsyncBlocker

__all__ = [
    "AsyncPipelineLike",
    "AsyncRedisClient",
    "AsyncScriptLike",
    "PipelineLike",
    "RedisClient",
    "ScriptLike",
]


class ScriptLike(Protocol):
    """A Lua script: called with its keys and arguments, it runs with EVALSHA."""

    lua: str

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any: ...


class AsyncScriptLike(Protocol):
    lua: str

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any: ...


class PipelineLike(Protocol):
    """Commands queued, then sent together (a transaction keeps to one slot on a cluster)."""

    def execute_command(self, *args: Any) -> PipelineLike: ...

    def execute(self, raise_on_error: bool = True) -> list[Any]: ...


class RedisClient(Protocol):
    """A thread-safe client of one Redis deployment (a server, a primary, a cluster)."""

    def execute_command(self, *args: Any, timeout: float | None = None) -> Any:
        """One command (routed by its first key on a cluster); its reply, or ServerError."""

    def register_script(self, lua: str) -> ScriptLike:
        """A Lua script run with EVALSHA, loaded on NOSCRIPT (on each node of a cluster)."""

    def pipeline(self, transaction: bool = False) -> PipelineLike: ...

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` in groups that one multi-key command or script may take."""

    def scan_iter(self, match: str, count: int = 500) -> Iterator[bytes]:
        """SCAN MATCH over every primary, page by page (a key may come twice)."""

    def blocker(self, client_name: str | None = None) -> Blocker:
        """A connection of its own for blocking pops, ended early with ``interrupt()``."""

    def close(self) -> None: ...


class AsyncPipelineLike(Protocol):
    def execute_command(self, *args: Any) -> AsyncPipelineLike: ...

    async def execute(self, raise_on_error: bool = True) -> list[Any]: ...


class AsyncRedisClient(Protocol):
    """RedisClient's surface for asyncio: AsyncRedis, AsyncSentinelRedis, AsyncRedisCluster."""

    async def execute_command(self, *args: Any, timeout: float | None = None) -> Any: ...

    def register_script(self, lua: str) -> AsyncScriptLike: ...

    def pipeline(self, transaction: bool = False) -> AsyncPipelineLike: ...

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]: ...

    def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[bytes]: ...

    def blocker(self, client_name: str | None = None) -> AsyncBlocker: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
