"""The parts of jexkv.resp.cluster and the cluster/sentinel URLs that need no server.

Slots are checked against values from the Redis Cluster specification and redis-cli
(``CLUSTER KEYSLOT``); the slot-map parsers against replies shaped as Redis 7 sends them.
"""

from __future__ import annotations

import pytest

import jexkv
from jexkv.resp.cluster import RedisCluster, key_slot, parse_shards, parse_slots
from jexkv.resp.sentinel import SentinelRedis
from jexkv.resp.url import parse_cluster_url, parse_sentinel_url


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        ("foo", 12182),  # CLUSTER KEYSLOT foo
        ("bar", 5061),
        ("123456789", 12739),  # the spec's CRC16 check value 0x31C3, mod 16384
        ("", 0),
        (b"foo", 12182),
    ],
)
def test_key_slot_matches_redis(key, slot):
    assert key_slot(key) == slot


def test_hash_tags_put_keys_in_one_slot():
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == key_slot("foo{}{bar}")  # empty tag: the whole key
    assert key_slot("foo{}{bar}") != key_slot("bar")
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")  # the first { to the first }
    assert key_slot("foo{bar}{zap}") == key_slot("bar")


def test_queue_keys_with_a_tagged_prefix_share_a_slot():
    from jexkv.redis.scripts import queue_keys

    slots = {key_slot(k) for k in queue_keys("{bull}:emails")}
    assert slots == {key_slot("bull")}
    assert len({key_slot(k) for k in queue_keys("bull:emails")}) > 1


RESP3_SHARDS = [
    {
        "slots": [0, 5460],
        "nodes": [
            {"id": "a", "port": 7000, "ip": "127.0.0.1", "endpoint": "127.0.0.1",
             "role": "master", "replication-offset": 1, "health": "online"},
            {"id": "b", "port": 7003, "ip": "127.0.0.1", "endpoint": "127.0.0.1",
             "role": "replica", "replication-offset": 1, "health": "online"},
        ],
    },
    {
        "slots": [5461, 10922, 16000, 16383],
        "nodes": [{"id": "c", "port": 7001, "ip": "127.0.0.1", "role": "master",
                   "health": "online"}],
    },
]  # fmt: skip


def test_cluster_shards_of_resp3_and_resp2():
    expected = [
        (0, 5460, "127.0.0.1", 7000),
        (5461, 10922, "127.0.0.1", 7001),
        (16000, 16383, "127.0.0.1", 7001),
    ]
    assert parse_shards(RESP3_SHARDS) == expected

    def flat(value):
        if isinstance(value, dict):
            return [x for k, v in value.items() for x in (k.encode(), flat(v))]
        if isinstance(value, list):
            return [flat(v) for v in value]
        return value.encode() if isinstance(value, str) else value

    assert parse_shards(flat(RESP3_SHARDS)) == expected


def test_cluster_slots_before_redis_7():
    reply = [[0, 5460, [b"127.0.0.1", 7000, b"a"], [b"127.0.0.1", 7003, b"b"]],
             [5461, 16383, [b"127.0.0.1", 7001, b"c"]]]  # fmt: skip
    assert parse_slots(reply) == [(0, 5460, "127.0.0.1", 7000), (5461, 16383, "127.0.0.1", 7001)]


def test_command_slot_finds_the_key():
    slot = RedisCluster.command_slot
    assert slot(("GET", "foo")) == 12182
    assert slot(("EVALSHA", "abc", 2, "foo", "x")) == 12182
    assert slot(("EVALSHA", "abc", 0, "x")) is None
    assert slot(("PING",)) is None
    assert slot(("SCAN", 0)) is None


def test_cluster_url():
    seeds, kwargs = parse_cluster_url(
        "redis+cluster://u:p%40ss@h1:7000,h2,[::1]:7002?socket_timeout_ms=250", {}
    )
    assert seeds == [("h1", 7000), ("h2", 6379), ("::1", 7002)]
    assert kwargs == {"username": "u", "password": "p@ss", "socket_timeout": 0.25}
    assert parse_cluster_url("redis+cluster://h1:7000/0", {})[0] == [("h1", 7000)]


def test_sentinel_url():
    sentinels, service, kwargs = parse_sentinel_url(
        "redis+sentinel://:pw@s1:26380,s2/my%20master/3?retries=1", {}
    )
    assert sentinels == [("s1", 26380), ("s2", 26379)]
    assert service == "my master"
    assert kwargs == {"db": 3, "password": "pw", "retries": 1}


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:1,127.0.0.1:2",
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/0",
    ],
)
def test_cluster_and_sentinel_stores_open_without_connecting(url):
    with jexkv.open_kv(url, namespace="n:") as kv:
        assert "pw" not in repr(kv)
    with jexkv.open_queue(url, prefix="{q}"):
        pass


def test_sentinel_repr_hides_the_password():
    client = SentinelRedis.from_url("redis+sentinel://:s3cret@127.0.0.1:1/svc")
    assert "s3cret" not in repr(client) and "svc" in repr(client)
