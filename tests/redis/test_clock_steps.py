"""A server clock that stepped back must not hold back the stalled check: a
``Q:stalled-check`` that lives longer than one interval is stale (README, "Clock steps")."""

from __future__ import annotations

import jexkv
from jexkv.redis.queue import RedisQueueBackend
from jexkv.resp import Redis
from tests.helpers import wait_for

DB = 7  # a database no other test module uses
QUEUE = "clock"
Q = "bull:" + QUEUE


def test_a_throttle_longer_than_its_interval_is_stale(url, redis):
    backend = RedisQueueBackend(Redis.from_url(url))
    try:
        with jexkv.open_queue(url) as q:
            job = q.enqueue(QUEUE, "x")
        backend.fetch(QUEUE, 50, 1)  # its worker dies
        assert backend.recover_stalled(QUEUE, 1, 100, None) == 0  # marks it
        assert wait_for(lambda: redis.execute_command("EXISTS", f"{Q}:{job.id}:lock") == 0)
        # As left by a check made while the server's clock was an hour ahead:
        redis.execute_command("SET", f"{Q}:stalled-check", "1", "PX", 3_600_000)
        assert backend.recover_stalled(QUEUE, 1, 100, None) == 1
        assert 0 < redis.execute_command("PTTL", f"{Q}:stalled-check") <= 100
    finally:
        backend.close()


def test_a_throttle_within_its_interval_holds(url, redis):
    backend = RedisQueueBackend(Redis.from_url(url))
    try:
        redis.execute_command("SET", f"{Q}:stalled-check", "1", "PX", 60_000)
        assert backend.recover_stalled(QUEUE, 1, 60_000, None) == 0
        assert redis.execute_command("SMEMBERS", f"{Q}:stalled") in ([], set())
    finally:
        backend.close()
