"""The TaskQueue contract on every adapter and both APIs: schedules (README, "Schedules").

Shared helpers and timing rules: tests/contract/queue_helpers.py. Ticks are 100 ms apart
and windows short; counts are checked with a tick of slack either side, the beat exactly.
"""

from __future__ import annotations

import threading
import time

import pytest

import jexkv
from tests.contract.queue_helpers import NO_JOBS, QUEUE
from tests.helpers import wait_for

EVERY = 100


class Ticks:
    """A handler recording the tick of each schedule job it runs (from the job id)."""

    def __init__(self, fail=False):
        self.lock = threading.Lock()
        self.jobs: list = []
        self.fail = fail

    def __call__(self, job):
        with self.lock:
            self.jobs.append(job)
        if self.fail:
            raise RuntimeError("scheduled failure")
        return job.payload

    def ticks(self, schedule_id=None) -> list[int]:
        with self.lock:
            ids = [job.id for job in self.jobs]
        found = [i.rsplit(":", 1) for i in ids if schedule_id is None or f":{schedule_id}:" in i]
        return [int(tick) for _, tick in found]


def assert_on_the_beat(ticks: list[int], every: int = EVERY) -> None:
    assert len(ticks) == len(set(ticks)), f"a tick ran twice: {ticks}"
    gaps = [b - a for a, b in zip(sorted(ticks), sorted(ticks)[1:])]
    assert set(gaps) <= {every}, f"ticks missed or off the beat: {gaps}"


def test_every_ms_makes_one_job_per_tick(q):
    rec = Ticks()
    made = q.schedule(QUEUE, "beat", "tick", {"n": 1}, every_ms=EVERY)
    assert (made.id, made.queue, made.name, made.payload) == ("beat", QUEUE, "tick", {"n": 1})
    assert (made.cron, made.every_ms, made.tz, made.runs) == (None, EVERY, "UTC", 1)
    first = made.next_run_at_ms
    assert abs(first - time.time() * 1000) < 2000
    q.register_worker(QUEUE, rec, concurrency=2)
    time.sleep(0.75)
    assert q.unschedule(QUEUE, "beat") is True
    ticks = rec.ticks()
    assert 5 <= len(ticks) <= 10, ticks
    assert_on_the_beat(ticks)
    assert min(ticks) == first
    assert all(job.name == "tick" and job.payload == {"n": 1} for job in rec.jobs)
    assert q.unschedule(QUEUE, "beat") is False
    assert q.schedules(QUEUE) == []


def test_unschedule_stops_it_and_removes_its_next_job(q):
    rec = Ticks()
    q.schedule(QUEUE, "gone", "tick", None, every_ms=EVERY)
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: len(rec.ticks()) >= 2)
    q.unschedule(QUEUE, "gone")
    ran = len(rec.ticks())
    time.sleep(3 * EVERY / 1000)
    assert len(rec.ticks()) <= ran + 1  # at most the one that had started
    assert q.counts(QUEUE)["delayed"] == q.counts(QUEUE)["waiting"] == 0


def test_schedule_again_replaces_it(q):
    q.schedule(QUEUE, "same", "old", {"v": 1}, every_ms=60_000, start_at_ms=_in(60_000))
    assert q.counts(QUEUE)["delayed"] == 1
    again = q.schedule(QUEUE, "same", "new", {"v": 2}, every_ms=EVERY, attempts=3)
    [listed] = q.schedules(QUEUE)
    assert (listed.name, listed.payload, listed.every_ms, listed.attempts) == (
        "new",
        {"v": 2},
        EVERY,
        3,
    )
    assert listed.next_run_at_ms == again.next_run_at_ms
    counts = q.counts(QUEUE)
    assert counts["delayed"] + counts["waiting"] == 1  # the old schedule's job is gone
    rec = Ticks()
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: len(rec.jobs) >= 2)
    q.unschedule(QUEUE, "same")
    assert {job.name for job in rec.jobs} == {"new"}
    assert {job.attempts for job in rec.jobs} == {3}


def test_limit_ends_it(q):
    rec = Ticks()
    q.schedule(QUEUE, "three", "tick", None, every_ms=EVERY, limit=3)
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: len(rec.jobs) >= 3)
    time.sleep(2.5 * EVERY / 1000)
    assert len(rec.ticks()) == 3
    assert_on_the_beat(rec.ticks())
    [listed] = q.schedules(QUEUE)
    assert (listed.runs, listed.limit, listed.next_run_at_ms) == (3, 3, None)


def test_end_at_ms_ends_it(q):
    rec = Ticks()
    start = _in(100)
    q.schedule(
        QUEUE, "short", "tick", None, every_ms=EVERY, start_at_ms=start, end_at_ms=start + 250
    )
    q.register_worker(QUEUE, rec)
    time.sleep(0.7)
    ticks = rec.ticks()
    assert [t - start for t in sorted(ticks)] == [0, 100, 200], ticks
    assert q.schedules(QUEUE)[0].next_run_at_ms is None


def test_start_at_ms_in_the_future_waits_for_it(q):
    start = _in(400)
    made = q.schedule(QUEUE, "later", "tick", None, every_ms=EVERY, start_at_ms=start)
    assert made.next_run_at_ms == start
    assert q.counts(QUEUE)["delayed"] == 1
    rec = Ticks()
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: rec.jobs)
    assert min(rec.ticks()) == start
    assert time.time() * 1000 >= start - 2


def test_a_failing_scheduled_job_retries_and_dead_letters_and_the_schedule_goes_on(q):
    rec = Ticks(fail=True)
    q.schedule(QUEUE, "flaky", "tick", None, every_ms=EVERY, attempts=2)
    q.register_worker(QUEUE, rec, concurrency=2)
    assert wait_for(lambda: q.counts(QUEUE)["dead"] >= 3)
    q.unschedule(QUEUE, "flaky")
    dead = q.dead_letters(QUEUE)
    assert all(job.error.startswith("RuntimeError: scheduled failure") for job in dead)
    assert all(job.attempts_made == 2 for job in dead)
    assert len({job.id for job in dead}) == len(dead)


def test_listing_is_by_id_and_shows_each(q):
    q.schedule(QUEUE, "b", "nightly", {"k": 1}, cron="0 3 * * *", tz="Europe/Berlin")
    q.schedule(QUEUE, "a", "minutely", None, every_ms=60_000, priority=2, backoff=500)
    a, b = q.schedules(QUEUE)
    assert (a.id, a.every_ms, a.priority, a.backoff) == ("a", 60_000, 2, jexkv.Backoff.fixed(500))
    assert (b.id, b.cron, b.tz, b.payload, b.runs) == (
        "b",
        "0 3 * * *",
        "Europe/Berlin",
        {"k": 1},
        1,
    )
    # 03:00 in Berlin is 01:00 or 02:00 UTC, whole minutes, within the next day.
    assert b.next_run_at_ms % 3_600_000 == 0
    assert 0 < b.next_run_at_ms - time.time() * 1000 <= 86_400_000
    assert isinstance(a, jexkv.Schedule)


@pytest.mark.sync_api_only("a two-second timing test: the sync API covers the rule")
def test_cron_with_seconds_runs_on_whole_seconds(q):
    rec = Ticks()
    q.schedule(QUEUE, "sec", "tick", None, cron="* * * * * *")
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: len(rec.jobs) >= 3, timeout=6)
    q.unschedule(QUEUE, "sec")
    ticks = rec.ticks()
    assert all(t % 1000 == 0 for t in ticks)
    assert_on_the_beat(ticks, 1000)


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({}, jexkv.ConfigError, "exactly one of cron and every_ms"),
        ({"cron": "* * * * *", "every_ms": 100}, jexkv.ConfigError, "exactly one"),
        ({"every_ms": 0}, jexkv.ConfigError, "every_ms must be a positive int"),
        ({"every_ms": 1.5}, jexkv.ConfigError, "every_ms"),
        ({"cron": "61 * * * *"}, jexkv.ConfigError, "minute"),
        ({"cron": "0 0 30 2 *"}, jexkv.ConfigError, "never matches"),
        ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, jexkv.ConfigError, "Mars/Olympus"),
        ({"every_ms": 100, "tz": "UTC"}, jexkv.ConfigError, "tz goes with cron"),
        ({"every_ms": 100, "start_at_ms": 2000, "end_at_ms": 1000}, jexkv.ConfigError, "end_at_ms"),
        ({"every_ms": 100, "limit": 0}, jexkv.ConfigError, "limit"),
        ({"every_ms": 100, "attempts": 0}, ValueError, "attempts"),
    ],
)
def test_bad_input_writes_nothing(q, options, error, words):
    with pytest.raises(error, match=words):
        q.schedule(QUEUE, "bad", "tick", None, **options)
    assert q.schedules(QUEUE) == []
    assert q.counts(QUEUE) == NO_JOBS


def test_bad_schedule_ids(q):
    with pytest.raises(jexkv.ConfigError, match="schedule_id"):
        q.schedule(QUEUE, "a:b", "tick", every_ms=100)
    with pytest.raises(jexkv.ConfigError, match="schedule_id"):
        q.schedule(QUEUE, "", "tick", every_ms=100)
    with pytest.raises(jexkv.InvalidArgumentType, match="schedule_id"):
        q.unschedule(QUEUE, 5)
    assert q.schedules(QUEUE) == []


def _in(ms: int) -> int:
    return int(time.time() * 1000) + ms
