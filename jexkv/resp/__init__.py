"""jexkv's own Redis client: a sans-IO RESP parser, connections, a pool, and Redis.

``from jexkv.resp import Redis`` (or RedisCluster, SentinelRedis); the parts live in
protocol.py (no I/O), connection.py (sockets, TLS, timeouts), pool.py, client.py,
cluster.py, sentinel.py and errors.py.
"""

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
