"""The cluster and sentinel fixtures themselves, through jexkv's plain single-node client
(no cluster or sentinel support needed): they are what the other tests here stand on."""

from __future__ import annotations

import pytest

from jexkv.resp import ServerError
from tests.redis_cluster import (
    SLOTS,
    STEP_BATCH,
    STEP_DONE,
    STEP_MIGRATING,
    STEP_MOVED,
    RedisCluster,
    key_slot,
    keys_in_slot,
    text,
)
from tests.redis_sentinel import RedisSentinelSet


def test_cluster_covers_every_slot_across_three_primaries(cluster: RedisCluster) -> None:
    for port in cluster.ports:
        info = cluster.cluster_info(port)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == str(SLOTS)
        assert info["cluster_known_nodes"] == "3"
        table = cluster.slot_table(port)
        # Contiguous ranges from 0 to 16383, every primary serving some.
        assert table[0][0] == 0 and table[-1][1] == SLOTS - 1
        for (_, last, _), (first, _, _) in zip(table, table[1:]):
            assert first == last + 1
        assert {owner for _, _, owner in table} == set(cluster.ports)
    assert len(cluster.nodes) == 3 and all(host == "127.0.0.1" for host, _ in cluster.nodes)
    seeds = ",".join(f"127.0.0.1:{port}" for port in cluster.ports)
    assert cluster.url() == f"redis+cluster://{seeds}"


def test_key_slot_helper_matches_the_server(cluster: RedisCluster) -> None:
    for key in ["foo", "{bull}:emails:id", "{user1000}.following", "a{}b", "{}x", "x{y", "é"]:
        assert key_slot(key) == cluster.key_slot(key), key


def test_a_key_lives_on_its_slot_owner_only(cluster: RedisCluster) -> None:
    slot = key_slot("fixture-key")
    owner = cluster.owner(slot)
    cluster.client(owner).execute_command("SET", "fixture-key", "v")
    other = next(port for port in cluster.ports if port != owner)
    with pytest.raises(ServerError) as raised:
        cluster.client(other).execute_command("GET", "fixture-key")
    assert raised.value.code == "MOVED"
    assert raised.value.message == f"{slot} 127.0.0.1:{owner}"
    cluster.flushall()
    assert cluster.dbsize() == 0


def test_migrate_slot_answers_ask_then_moved(cluster: RedisCluster) -> None:
    slot = key_slot("{fixture-migration}")
    keys = [f"{{fixture-migration}}:{i}" for i in range(12)] + keys_in_slot(slot, 3)
    source = cluster.owner(slot)
    target = next(port for port in cluster.ports if port != source)
    for i, key in enumerate(keys):
        cluster.client(source).execute_command("SET", key, i)
    src, dst = cluster.client(source), cluster.client(target)
    seen: list[str] = []

    def hook(step: str) -> None:
        seen.append(step)
        if step == STEP_MIGRATING:  # nothing moved: the source still answers
            assert src.execute_command("GET", keys[0]) == b"0"
            with pytest.raises(ServerError) as raised:  # a missing key: ask the target
                src.execute_command("GET", "{fixture-migration}:missing")
            assert raised.value.code == "ASK"
            assert raised.value.message == f"{slot} 127.0.0.1:{target}"
        if step == STEP_MOVED:  # every key on the target, which answers only after ASKING
            with pytest.raises(ServerError) as raised:
                src.execute_command("GET", keys[0])
            assert raised.value.code == "ASK"
            with pytest.raises(ServerError) as raised:
                dst.execute_command("GET", keys[0])
            assert raised.value.code == "MOVED"
            asking = dst.pipeline()  # one connection: ASKING applies to the next command
            asking.execute_command("ASKING").execute_command("GET", keys[0])
            assert text(asking.execute()[1]) == "0"

    assert cluster.migrate_slot(slot, source, target, keys_batch=4, hook=hook) == len(keys)
    assert seen == [STEP_MIGRATING] + [STEP_BATCH] * 4 + [STEP_MOVED, STEP_DONE]
    assert cluster.owner(slot) == target
    for i, key in enumerate(keys):
        assert dst.execute_command("GET", key) == str(i).encode()
    with pytest.raises(ServerError) as raised:
        src.execute_command("GET", keys[0])
    assert raised.value.code == "MOVED"
    assert raised.value.message == f"{slot} 127.0.0.1:{target}"


def test_sentinel_set_fails_over_to_the_replica(sentinel: RedisSentinelSet) -> None:
    seeds = ",".join(f"127.0.0.1:{port}" for _, port in sentinel.sentinel_nodes)
    assert sentinel.url() == f"redis+sentinel://{seeds}/mymaster/0"
    assert sentinel.url(db=3).endswith("/mymaster/3")
    primary = sentinel.primary_port()
    (replica,) = sentinel.replica_ports()
    sentinel.client(primary).execute_command("SET", "before-failover", "1")
    assert sentinel.client(primary).execute_command("WAIT", 1, 5000) == 1
    assert sentinel.client(replica).execute_command("GET", "before-failover") == b"1"

    old = sentinel.kill_primary()
    assert old == primary
    new = sentinel.wait_failover(old, timeout=15.0)  # raises unless done within 15 s
    assert new == replica
    promoted = sentinel.client(new)
    assert sentinel.replication(new)["role"] == "master"
    assert promoted.execute_command("GET", "before-failover") == b"1"
    assert text(promoted.execute_command("SET", "after-failover", "2")) == "OK"
