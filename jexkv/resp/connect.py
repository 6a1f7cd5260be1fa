"""client_for_url: the right client for any Redis URL jexkv takes.

Rule: the scheme alone decides: ``redis://``, ``rediss://`` and ``unix://`` give a Redis;
``redis+cluster://`` a RedisCluster; ``redis+sentinel://`` a SentinelRedis. The three offer the
methods the KV and queue adapters use (``surface.RedisClient``), so adapters never look at the
scheme.
"""

from __future__ import annotations

from typing import Any

from jexkv.resp.client import Redis
from jexkv.resp.cluster import RedisCluster
from jexkv.resp.sentinel import SentinelRedis
from jexkv.resp.surface import RedisClient
from jexkv.resp.url import parse_redis_url

__all__ = ["client_for_url"]


def client_for_url(url: str, options: dict[str, Any]) -> RedisClient:
    """A client (not yet connected) for ``url``; ``options`` as the URL's query string takes."""
    scheme = url.partition("://")[0].lower()
    if scheme == "redis+cluster":
        return RedisCluster.from_url(url, **options)
    if scheme == "redis+sentinel":
        return SentinelRedis.from_url(url, **options)
    return Redis(**parse_redis_url(url, options))
