"""A Redis ACL user that may not run CLIENT or BZPOPMIN: the queue says once which command
is missing, idle workers fall back to a bounded poll, and jobs still start promptly."""

from __future__ import annotations

import logging
import time

import pytest

import jexkv
from jexkv.resp import Redis
from tests.helpers import wait_for

DENIED = {"client": ["-client"], "bzpopmin": ["-bzpopmin"], "both": ["-client", "-bzpopmin"]}


@pytest.mark.parametrize("denied", list(DENIED))
def test_a_user_without_client_or_bzpopmin(own_redis_server, denied, caplog):
    caplog.set_level(logging.WARNING, logger="jexkv")
    admin_url = own_redis_server.url()
    with Redis.from_url(admin_url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", *DENIED[denied]
        )
    url = own_redis_server.url(username="limited", password="pw")
    ran: list[float] = []
    with jexkv.open_queue(url) as q, jexkv.open_queue(admin_url) as producer:
        q.register_worker("q", lambda job: ran.append(time.monotonic()), concurrency=2)
        time.sleep(1.0)  # idle: many wait rounds
        for n in range(5):
            enqueued = time.monotonic()
            producer.enqueue("q", "t", {"n": n})
            assert wait_for(lambda n=n: len(ran) == n + 1, timeout=10)
            assert ran[-1] - enqueued < 2.0  # picked up by the poll, not by a lease running out
    text = caplog.text
    assert "TypeError" not in text and "Traceback" not in text
    warnings = [r.getMessage() for r in caplog.records if "may not run" in r.getMessage()]
    for command in DENIED[denied]:
        named = [m for m in warnings if command[1:].upper() in m]
        assert len(named) == 1, warnings
    assert not any("failed" in r.getMessage() for r in caplog.records), caplog.text
