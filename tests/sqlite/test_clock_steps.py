"""A wall-clock step that is undone (NTP, a VM resumed) must not hold back the stalled
check: a throttle time further ahead than its interval is stale."""

from __future__ import annotations

import datetime

from freezegun import freeze_time

import jexkv


def test_a_clock_step_undone_does_not_delay_the_stalled_check(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    with freeze_time("2026-06-01 12:00:00") as clock:
        with jexkv.open_queue(url, lease_ms=1000) as q:
            backend = q._backend
            clock.tick(datetime.timedelta(hours=1))  # the wall clock steps an hour ahead,
            backend.recover_stalled("q", 1, 1000, None)  # a worker checks for stalled jobs,
            clock.tick(-datetime.timedelta(hours=1))  # and the clock is set right again
            clock.tick(datetime.timedelta(seconds=3))
            job = q.enqueue("q", "t", attempts=3)
            assert [c.id for c, _ in backend.fetch("q", 1000, 1)] == [job.id]  # its worker dies
            clock.tick(datetime.timedelta(seconds=2))  # the lease runs out
            assert backend.recover_stalled("q", 1, 1000, None) == 1  # not an hour later
            assert q.get_job("q", job.id).state == "waiting"


def test_the_throttle_still_holds_within_its_interval(tmp_path):
    with freeze_time("2026-06-01 12:00:00") as clock:
        with jexkv.open_queue(f"sqlite:///{tmp_path}/q.db", lease_ms=1000) as q:
            job = q.enqueue("q", "t", attempts=3)
            backend = q._backend
            backend.fetch("q", 1000, 1)
            clock.tick(datetime.timedelta(seconds=2))
            assert backend.recover_stalled("q", 1, 10_000, None) == 1
            backend.fetch("q", 1000, 1)
            clock.tick(datetime.timedelta(seconds=2))
            assert backend.recover_stalled("q", 1, 10_000, None) == 0  # checked 2 s ago
            assert q.get_job("q", job.id).state == "active"
