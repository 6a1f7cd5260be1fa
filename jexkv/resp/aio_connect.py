"""async_client_for_url: the right asyncio client for any Redis URL jexkv takes (connect.py's
rule: the scheme alone decides)."""

from __future__ import annotations

from typing import Any

from jexkv.resp.aio_client import AsyncRedis
from jexkv.resp.aio_cluster import AsyncRedisCluster
from jexkv.resp.aio_sentinel import AsyncSentinelRedis
from jexkv.resp.surface import AsyncRedisClient
from jexkv.resp.url import parse_redis_url

__all__ = ["async_client_for_url"]


def async_client_for_url(url: str, options: dict[str, Any]) -> AsyncRedisClient:
    """A client (not yet connected) for ``url``; ``options`` as the URL's query string takes."""
    scheme = url.partition("://")[0].lower()
    if scheme == "redis+cluster":
        return AsyncRedisCluster.from_url(url, **options)
    if scheme == "redis+sentinel":
        return AsyncSentinelRedis.from_url(url, **options)
    return AsyncRedis(**parse_redis_url(url, options))
