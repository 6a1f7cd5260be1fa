"""RedisCluster and SentinelRedis beyond the contract suites: pipelines split by node,
transactions kept to one slot, scripts loaded per node, and a graceful failover (the old
primary answers READONLY) that the caller never sees."""

from __future__ import annotations

import pytest

import jexkv
from jexkv.resp.cluster import RedisCluster as ClusterClient
from jexkv.resp.cluster import key_slot
from jexkv.resp.sentinel import SentinelRedis
from tests.helpers import wait_for
from tests.redis_cluster import RedisCluster
from tests.redis_sentinel import RedisSentinelSet


@pytest.fixture
def client(cluster: RedisCluster):
    with ClusterClient.from_url(cluster.url()) as c:
        yield c


def test_a_pipeline_is_split_by_node_and_answered_in_order(client, cluster):
    keys = [f"p{i}" for i in range(60)]
    assert len({cluster.owner(key_slot(k)) for k in keys}) == 3  # every node has some
    pipe = client.pipeline()
    for i, key in enumerate(keys):
        pipe.execute_command("SET", key, i)
    for key in keys:
        pipe.execute_command("GET", key)
    replies = pipe.execute()
    assert replies[: len(keys)] == [b"OK"] * len(keys) or replies[: len(keys)] == ["OK"] * 60
    assert [int(r) for r in replies[len(keys) :]] == list(range(60))


def test_a_transaction_keeps_to_one_slot(client):
    tx = client.pipeline(transaction=True)
    tx.execute_command("SET", "{t}a", 1).execute_command("INCR", "{t}a")
    assert tx.execute()[-1] == 2
    tx = client.pipeline(transaction=True)
    tx.execute_command("SET", "a", 1).execute_command("SET", "b", 2)
    assert key_slot("a") != key_slot("b")
    with pytest.raises(jexkv.ConfigError, match="one slot"):
        tx.execute()


def test_scripts_are_loaded_again_on_a_node_that_lost_them(client, cluster):
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    keys = [f"s{i}" for i in range(30)]
    assert [script(keys=[k]) for k in keys] == [1] * 30
    for port in cluster.ports:
        cluster.client(port).execute_command("SCRIPT", "FLUSH")
    assert [script(keys=[k]) for k in keys] == [2] * 30


def test_keys_and_clear_cover_every_node(cluster):
    with jexkv.open_kv(cluster.url(), namespace="ns:") as kv:
        kv.set_many({f"k{i}": i for i in range(90)})
        assert sorted(kv.keys()) == sorted(f"k{i}" for i in range(90))
        assert all(cluster.client(p).execute_command("DBSIZE") > 0 for p in cluster.ports)
        assert kv.clear() == 90
        assert list(kv.keys()) == []


def test_a_graceful_failover_is_not_seen_by_the_caller(sentinel: RedisSentinelSet):
    """SENTINEL FAILOVER demotes the live primary: its pooled connections now answer
    READONLY to writes, which did not run, so the client asks again and resends."""
    with SentinelRedis.from_url(sentinel.url()) as client:
        client.execute_command("SET", "before", 1)
        # Replication is asynchronous: a failover may lose a write no replica has yet, which
        # is not what this test is about. WAIT until one has it.
        assert client.execute_command("WAIT", 1, 5000) >= 1
        old = sentinel.primary_port()
        sentinel.sentinels[0].command("FAILOVER", "mymaster")
        assert wait_for(lambda: sentinel.primary_port() != old, timeout=30)

        def demoted() -> bool:
            try:  # the failover kills the clients of the old primary, the fixture's too
                return sentinel.replication(old).get("role") == "slave"
            except jexkv.BackendError:
                return False

        assert wait_for(demoted, timeout=30)
        for i in range(20):  # through the pooled connection to the demoted primary first
            client.execute_command("SET", f"after{i}", i)
        assert client.execute_command("GET", "after19") in (b"19", "19")
        assert client.execute_command("GET", "before") in (b"1", "1")


def test_sentinels_are_tried_in_turn_until_one_answers(sentinel: RedisSentinelSet):
    from tests.redis_server import free_port

    nodes = ",".join(f"{h}:{p}" for h, p in sentinel.sentinel_nodes)
    url = f"redis+sentinel://127.0.0.1:{free_port()},{nodes}/mymaster/0"  # the first is down
    with jexkv.open_kv(url) as kv:
        assert kv.set("k", 1) and kv.get("k") == 1
    with pytest.raises(jexkv.BackendUnavailable, match="no sentinel"):
        with jexkv.open_kv(f"redis+sentinel://127.0.0.1:{free_port()}/mymaster") as kv:
            kv.get("k")
