"""A job whose attempts were used up by a stalled run gets the run it is fetched for, and
is shown as such on every adapter with leases: "attempt 2 of 2", never "2 of 1"."""

from __future__ import annotations

import logging
import time

import pytest

import jexkv
from tests.helpers import wait_for

QUEUE = "stalls"


def test_a_run_after_a_stall_that_used_the_last_attempt(queue_url, caplog):
    if queue_url.startswith("memory"):
        pytest.skip("memory:// jobs never stall: a dead worker takes its process with it")
    caplog.set_level(logging.ERROR, logger="jexkv")
    with jexkv.open_queue(queue_url, lease_ms=200, max_stalls=1) as q:
        job = q.enqueue(QUEUE, "t", attempts=1)
        backend = q._backend  # a worker that claims the job and dies: it never finishes it
        assert [claimed.id for claimed, _ in backend.fetch(QUEUE, 200, 1)] == [job.id]

        def recovered() -> bool:
            backend.recover_stalled(QUEUE, 1, 200, None)
            found = q.get_job(QUEUE, job.id)
            return found is not None and found.state == "waiting"

        assert wait_for(recovered, timeout=20)
        waiting = q.get_job(QUEUE, job.id)
        assert (waiting.attempts_made, waiting.attempts) == (1, 2)
        runs = []

        def handler(run):
            runs.append((run.attempts_made, run.attempts))
            raise RuntimeError("fails again")

        q.register_worker(QUEUE, handler)
        assert wait_for(lambda: q.get_job(QUEUE, job.id).state == "dead", timeout=20)
        time.sleep(0.05)
    assert runs == [(1, 2)]
    messages = [r.getMessage() for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(messages) == 1 and "attempt 2 of 2" in messages[0], messages
