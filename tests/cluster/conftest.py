"""Fixtures of the Redis Cluster and Sentinel tests.

``cluster`` and ``sentinel`` are the per-test views of the session fixtures
``redis_cluster`` and ``redis_sentinel`` (tests/conftest.py): the same processes, emptied
first (and, for the sentinel set, healed after an earlier test's failover).
"""

from __future__ import annotations

import pytest

from tests.redis_cluster import RedisCluster
from tests.redis_sentinel import RedisSentinelSet


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, every primary emptied and no slot half moved (slots stay
    where earlier tests moved them: ask ``owner(slot)``)."""
    redis_cluster.reset()
    return redis_cluster


@pytest.fixture
def sentinel(redis_sentinel: RedisSentinelSet) -> RedisSentinelSet:
    """The session's sentinel set, healthy (a primary and an in-sync replica) and empty.

    A test may kill the primary; the next test that asks gets the killed server back
    as a replica of the new primary."""
    redis_sentinel.heal()
    redis_sentinel.flushall()
    return redis_sentinel
