"""jexkv's own Redis client: a sans-IO RESP parser, connections, a pool, and Redis.

``from jexkv.resp import Redis`` (or RedisCluster, SentinelRedis); the parts live in
protocol.py (no I/O), connection.py (sockets, TLS, timeouts), pool.py, client.py,
cluster.py, sentinel.py and errors.py. The package imports nothing but the error tree from
the rest of jexkv, and its names are imported when first used (PEP 562): importing
``jexkv.resp.protocol`` loads the parser alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jexkv.resp.client import Pipeline, PubSub, Redis, Script
    from jexkv.resp.cluster import RedisCluster
    from jexkv.resp.errors import (
        ExecAbortError,
        NoScriptError,
        ReadOnlyError,
        ServerError,
        WatchError,
        WrongTypeError,
    )
    from jexkv.resp.protocol import ErrorReply
    from jexkv.resp.sentinel import SentinelRedis

__all__ = [
    "ErrorReply",
    "ExecAbortError",
    "NoScriptError",
    "Pipeline",
    "PubSub",
    "ReadOnlyError",
    "Redis",
    "RedisCluster",
    "Script",
    "SentinelRedis",
    "ServerError",
    "WatchError",
    "WrongTypeError",
]


def __getattr__(name: str) -> Any:
    module: Any
    if name in ("Pipeline", "PubSub", "Redis", "Script"):
        from jexkv.resp import client as module
    elif name == "RedisCluster":
        from jexkv.resp import cluster as module
    elif name == "SentinelRedis":
        from jexkv.resp import sentinel as module
    elif name == "ErrorReply":
        from jexkv.resp import protocol as module
    elif name in __all__:
        from jexkv.resp import errors as module
    else:
        raise AttributeError(f"module 'jexkv.resp' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
