"""The TaskQueue contract (README, "The task queue"), run on every adapter.

Timing rules: waits use events or ``wait_for`` with deadlines of a few seconds; timing
assertions check correctness (never early, delays in their range) with generous upper bounds,
never speed.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import threading
import time
from collections import Counter

import pytest

import jexkv
from tests.helpers import wait_for

QUEUE = "jobs"
STATES = ("waiting", "delayed", "active", "completed", "dead")
NO_JOBS = dict.fromkeys(STATES, 0)
# Due times are whole milliseconds on the wall clock, we measure with time.monotonic():
# a job may start up to ~1 ms "before" its delay by rounding alone.
CLOCK_SLACK = 0.002
# "At most ~200 ms late", asserted loosely: this suite checks correctness, not speed.
LATE = 1.0
HANDLER_WAIT = 10  # seconds a blocked handler waits before giving up on its own
WAIT = 5.0  # deadline of an ordinary wait_for


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class Recorder:
    """A handler that records each run (monotonic start time, job), then calls ``then(job)``."""

    def __init__(self, then=None):
        self._lock = threading.Lock()
        self._runs: list = []
        self._then = then

    def __call__(self, job):
        started = time.monotonic()
        with self._lock:
            self._runs.append((started, job))
        if self._then is not None:
            return self._then(job)
        return None

    @property
    def jobs(self) -> list:
        with self._lock:
            return [job for _, job in self._runs]

    def starts(self, job_id=None) -> list:
        with self._lock:
            return [t for t, job in self._runs if job_id is None or job.id == job_id]

    def payloads(self) -> list:
        return [job.payload for job in self.jobs]

    def count(self, job_id=None) -> int:
        return len(self.starts(job_id))

    def wait(self, n: int, timeout: float = WAIT) -> bool:
        return wait_for(lambda: self.count() >= n, timeout)


@pytest.fixture
def make_event(open_queue_on_same_backend):
    """``make_event()``: a threading.Event set at teardown, before the queues close.

    (It depends on the queue factory only so that it is torn down first.)
    """
    made: list = []

    def make():
        event = threading.Event()
        made.append(event)
        return event

    yield make
    for event in made:
        event.set()


def counts(q, queue: str = QUEUE) -> dict:
    """The five contract counts (the queue may report more keys)."""
    got = q.counts(queue)
    return {state: got[state] for state in STATES}


def drained(q, queue: str = QUEUE) -> bool:
    """Nothing waiting, delayed or active."""
    got = q.counts(queue)
    return got["waiting"] == got["delayed"] == got["active"] == 0


def state_of(q, job_id: str, queue: str = QUEUE):
    job = q.get_job(queue, job_id)
    return None if job is None else job.state


def gaps(times: list) -> list:
    return [later - earlier for earlier, later in zip(times, times[1:])]


def explode_with_boom(job):
    raise ValueError("boom")


def close_within(queue, timeout: float = WAIT, **kwargs) -> None:
    """``queue.close(**kwargs)`` on a helper thread: a close that hangs fails the test."""
    errors: list = []

    def run():
        try:
            queue.close(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    closer = threading.Thread(target=run, name="test-close", daemon=True)
    closer.start()
    closer.join(timeout)
    assert not closer.is_alive(), f"close() did not return within {timeout} s"
    if errors:
        raise errors[0]


def jexkv_threads() -> set:
    return {t for t in threading.enumerate() if t.name.startswith("jexkv")}


# --------------------------------------------------------------------------
# order: FIFO, priority, delay
# --------------------------------------------------------------------------


def test_fifo_with_concurrency_1(q):
    for i in range(20):
        q.enqueue(QUEUE, "task", i)
    rec = Recorder()
    q.register_worker(QUEUE, rec, concurrency=1)
    assert rec.wait(20)
    assert rec.payloads() == list(range(20))


def test_fifo_for_jobs_enqueued_while_worker_is_busy(q, make_event):
    started, release = make_event(), make_event()

    def then(job):
        if job.payload == "first":
            started.set()
            release.wait(HANDLER_WAIT)

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "first")
    assert started.wait(WAIT)
    for i in range(10):
        q.enqueue(QUEUE, "task", i)
    release.set()
    assert rec.wait(11)
    assert rec.payloads() == ["first", *range(10)]


def test_priority_lower_first_same_priority_fifo(q):
    priorities = [5, 0, 3, 1, 0, 5, 3, 1, 0, 2]
    for i, priority in enumerate(priorities):
        q.enqueue(QUEUE, "task", i, priority=priority)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(len(priorities))
    assert rec.payloads() == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))


def test_priority_zero_runs_before_any_nonzero(q):
    q.enqueue(QUEUE, "task", "p2", priority=2)
    q.enqueue(QUEUE, "task", "p1", priority=1)
    q.enqueue(QUEUE, "task", "default")
    q.enqueue(QUEUE, "task", "p0", priority=0)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(4)
    assert rec.payloads() == ["default", "p0", "p1", "p2"]


@pytest.mark.parametrize("delay_ms", [30, 300])
def test_delay_never_early_and_not_much_late(q, delay_ms):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    before = time.monotonic()
    job = q.enqueue(QUEUE, "task", None, delay_ms=delay_ms)
    assert job.state == "delayed"
    assert rec.wait(1)
    elapsed = rec.starts()[0] - before
    assert elapsed >= delay_ms / 1000 - CLOCK_SLACK
    assert elapsed < delay_ms / 1000 + LATE


def test_zero_delay_is_waiting(q):
    job = q.enqueue(QUEUE, "task", None, delay_ms=0)
    assert job.state == "waiting"
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_delayed_jobs_run_in_due_time_order(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "late", delay_ms=400)
    q.enqueue(QUEUE, "task", "early", delay_ms=100)
    q.enqueue(QUEUE, "task", "middle", delay_ms=250)
    q.enqueue(QUEUE, "task", "now")
    assert rec.wait(4)
    assert rec.payloads() == ["now", "early", "middle", "late"]


def test_due_delayed_jobs_run_by_due_time_not_enqueue_order(q):
    q.enqueue(QUEUE, "task", "c", delay_ms=150)
    q.enqueue(QUEUE, "task", "b", delay_ms=100)
    q.enqueue(QUEUE, "task", "a", delay_ms=50)
    time.sleep(0.25)  # all three are due; no worker yet
    q.enqueue(QUEUE, "task", "d")  # due now, i.e. after the three others
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(4)
    assert rec.payloads() == ["a", "b", "c", "d"]


def test_priority_applies_to_due_delayed_jobs(q):
    q.enqueue(QUEUE, "task", "p1", priority=1)
    q.enqueue(QUEUE, "task", "p0-delayed", delay_ms=50)
    time.sleep(0.15)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(2)
    assert rec.payloads() == ["p0-delayed", "p1"]


# --------------------------------------------------------------------------
# attempts and backoff
# --------------------------------------------------------------------------


def test_retry_without_backoff_runs_every_attempt(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=3)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    assert {j.id for j in rec.jobs} == {job.id}
    assert counts(q) == {**NO_JOBS, "dead": 1}


def test_retry_then_success_completes(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)

    def then(job):
        if job.attempts_made < 2:
            raise ValueError("not yet")
        return "third time lucky"

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=5)
    assert wait_for(lambda: state_of(q, job.id) == "completed")
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    assert q.get_job(QUEUE, job.id).result == "third time lucky"
    assert counts(q) == {**NO_JOBS, "completed": 1}


def test_failed_attempt_with_attempts_left_is_delayed_with_error(q):
    q.register_worker(QUEUE, explode_with_boom)
    job = q.enqueue(QUEUE, "task", None, attempts=2, backoff=60_000)
    assert wait_for(lambda: state_of(q, job.id) == "delayed")
    retrying = q.get_job(QUEUE, job.id)
    assert retrying.attempts_made == 1
    assert retrying.error == "ValueError: boom"
    assert counts(q) == {**NO_JOBS, "delayed": 1}


@pytest.mark.parametrize(
    "make_backoff", [lambda: 100, lambda: jexkv.Backoff.fixed(100)], ids=["int", "Backoff.fixed"]
)
def test_fixed_backoff_spacing(q, make_backoff):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", None, attempts=3, backoff=make_backoff())
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2]
    for gap in gaps(rec.starts()):
        assert 0.1 - CLOCK_SLACK <= gap < 0.1 + LATE


def test_exponential_backoff_doubles(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", None, attempts=4, backoff=jexkv.Backoff.exponential(50))
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert [j.attempts_made for j in rec.jobs] == [0, 1, 2, 3]
    for gap, expected in zip(gaps(rec.starts()), [0.05, 0.1, 0.2]):
        assert expected - CLOCK_SLACK <= gap < expected + LATE


def test_exponential_backoff_capped_by_max_ms(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    backoff = jexkv.Backoff.exponential(60, max_ms=100)
    q.enqueue(QUEUE, "task", None, attempts=5, backoff=backoff)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    spacing = gaps(rec.starts())
    assert len(spacing) == 4
    for gap, expected in zip(spacing, [0.06, 0.1, 0.1, 0.1]):
        assert gap >= expected - CLOCK_SLACK
    # Uncapped, the last two would wait 240 + 480 ms; capped, 100 + 100 ms.
    assert spacing[2] + spacing[3] < 0.6


def test_exponential_jitter_keeps_delay_within_range(q):
    # exponential(300, jitter=0.5): the first retry waits a delay drawn from [150, 300] ms.
    n = 10

    def then(job):
        if job.attempts_made == 0:
            raise ValueError("first attempt fails")

    rec = Recorder(then)
    q.register_worker(QUEUE, rec, concurrency=n)
    backoff = jexkv.Backoff.exponential(300, jitter=0.5)
    jobs = [q.enqueue(QUEUE, "task", i, attempts=2, backoff=backoff) for i in range(n)]
    assert rec.wait(2 * n)
    spacing = []
    for job in jobs:
        first, second = rec.starts(job.id)
        spacing.append(second - first)
    assert min(spacing) >= 0.15 - CLOCK_SLACK
    assert max(spacing) < 0.3 + LATE
    # Without jitter (or with jitter above d) every gap would be >= 300 ms.
    assert statistics.median(spacing) < 0.3


# --------------------------------------------------------------------------
# dead letters
# --------------------------------------------------------------------------


def test_unrecoverable_runs_once_and_is_dead(q):
    assert issubclass(jexkv.Unrecoverable, jexkv.JexkvError)

    def then(job):
        raise jexkv.Unrecoverable("bad input")

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None, attempts=5)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    assert rec.count() == 1
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.state == "dead"
    assert dead.error == "Unrecoverable: bad input"
    assert counts(q) == {**NO_JOBS, "dead": 1}


def test_dead_letter_keeps_error_traceback_and_attempts(q):
    job = q.enqueue(QUEUE, "send", {"to": "a@b.c"}, attempts=3)
    q.register_worker(QUEUE, explode_with_boom)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.queue == QUEUE
    assert dead.name == "send"
    assert dead.payload == {"to": "a@b.c"}
    assert dead.state == "dead"
    assert dead.error == "ValueError: boom"
    assert "explode_with_boom" in dead.traceback
    assert dead.attempts == 3
    assert dead.attempts_made == 3
    stored = q.get_job(QUEUE, job.id)
    assert stored.state == "dead"
    assert stored.error == "ValueError: boom"


def test_dead_letters_newest_first_and_limit(q):
    def then(job):
        time.sleep(0.005)  # deaths a few ms apart
        raise ValueError(f"boom {job.payload}")

    # priorities make them die in the reverse of their enqueue order: c, b, a
    q.enqueue(QUEUE, "task", "a", priority=3)
    q.enqueue(QUEUE, "task", "b", priority=2)
    q.enqueue(QUEUE, "task", "c", priority=1)
    q.register_worker(QUEUE, Recorder(then))
    assert wait_for(lambda: counts(q)["dead"] == 3)
    dead = q.dead_letters(QUEUE)
    assert [j.payload for j in dead] == ["a", "b", "c"]
    assert [j.error for j in dead] == [f"ValueError: boom {p}" for p in "abc"]
    assert [j.payload for j in q.dead_letters(QUEUE, limit=2)] == ["a", "b"]
    assert [j.payload for j in q.dead_letters(QUEUE, limit=1)] == ["a"]


def test_dead_letters_default_limit_is_100(q):
    q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(105)])
    q.register_worker(QUEUE, explode_with_boom, concurrency=4)
    assert wait_for(lambda: counts(q)["dead"] == 105, timeout=15)
    assert len(q.dead_letters(QUEUE)) == 100
    assert len(q.dead_letters(QUEUE, limit=105)) == 105


def test_dead_letters_of_unknown_queue_is_empty(q):
    assert q.dead_letters("nothing-here") == []


def test_retry_dead_one_job(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    failing = threading.Event()
    failing.set()

    def then(job):
        if failing.is_set():
            raise ValueError("boom")
        return f"done {job.payload}"

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    a = q.enqueue(QUEUE, "task", "a", attempts=2)
    b = q.enqueue(QUEUE, "task", "b", attempts=2)
    assert wait_for(lambda: counts(q)["dead"] == 2)
    failing.clear()

    assert q.retry_dead(QUEUE, a.id) == 1
    assert wait_for(lambda: state_of(q, a.id) == "completed")
    assert [j.attempts_made for j in rec.jobs if j.id == a.id] == [0, 1, 0]
    done = q.get_job(QUEUE, a.id)
    assert done.result == "done a"
    assert done.error is None
    assert rec.count(b.id) == 2
    assert [j.id for j in q.dead_letters(QUEUE)] == [b.id]
    assert counts(q) == {**NO_JOBS, "completed": 1, "dead": 1}


def test_retry_dead_all_gives_fresh_attempt_budget(q):
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    jobs = [q.enqueue(QUEUE, "task", i, attempts=2) for i in range(3)]
    assert wait_for(lambda: counts(q)["dead"] == 3)
    assert rec.count() == 6

    assert q.retry_dead(QUEUE) == 3
    assert wait_for(lambda: rec.count() == 12 and counts(q)["dead"] == 3)
    for job in jobs:
        assert [j.attempts_made for j in rec.jobs if j.id == job.id] == [0, 1, 0, 1]
    assert all(j.attempts_made == 2 for j in q.dead_letters(QUEUE))
    assert counts(q) == {**NO_JOBS, "dead": 3}


def test_retry_dead_with_nothing_dead(q):
    job = q.enqueue(QUEUE, "task", None)
    assert q.retry_dead(QUEUE) == 0
    assert q.retry_dead(QUEUE, "unknown") == 0
    assert q.retry_dead(QUEUE, job.id) == 0  # waiting, not dead
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_purge_dead(q):
    q.register_worker(QUEUE, explode_with_boom)
    dead = [q.enqueue(QUEUE, "task", i) for i in range(3)]
    assert wait_for(lambda: counts(q)["dead"] == 3)
    later = q.enqueue(QUEUE, "task", "later", delay_ms=60_000)

    assert q.purge_dead(QUEUE) == 3
    assert counts(q) == {**NO_JOBS, "delayed": 1}
    assert q.dead_letters(QUEUE) == []
    assert all(q.get_job(QUEUE, job.id) is None for job in dead)
    assert q.get_job(QUEUE, later.id).state == "delayed"
    assert q.purge_dead(QUEUE) == 0
    assert q.retry_dead(QUEUE) == 0


# --------------------------------------------------------------------------
# job ids
# --------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_job_id_dedupe_in_every_kept_state(open_queue_on_same_backend, make_event, state):
    q = open_queue_on_same_backend(keep_completed=5)
    started, release = make_event(), make_event()

    def then(job):
        if job.payload == "fail":
            raise ValueError("boom")
        if job.payload == "hold":
            started.set()
            release.wait(HANDLER_WAIT)
        return "ok"

    rec = Recorder(then)
    payload = {"active": "hold", "dead": "fail"}.get(state, "x")
    delay_ms = 60_000 if state == "delayed" else 0
    first = q.enqueue(QUEUE, "task", payload, job_id="dup-1", delay_ms=delay_ms)
    assert first.id == "dup-1"
    if state in ("active", "completed", "dead"):
        q.register_worker(QUEUE, rec)
        assert wait_for(lambda: state_of(q, "dup-1") == state)
    before = counts(q)
    assert before[state] == 1

    again = q.enqueue(QUEUE, "other-name", "other payload", job_id="dup-1", priority=3)
    assert again.id == "dup-1"
    assert again.name == "task"
    assert again.payload == payload
    assert again.state == state
    assert counts(q) == before
    assert q.get_job(QUEUE, "dup-1").payload == payload

    release.set()
    if state == "active":
        assert wait_for(lambda: state_of(q, "dup-1") == "completed")
        assert rec.count() == 1
    assert rec.count() <= 1


def test_job_id_dedupe_in_enqueue_many(q):
    q.enqueue(QUEUE, "task", "original", job_id="dup-1")
    jobs = q.enqueue_many(
        QUEUE,
        [
            {"name": "task", "payload": "new"},
            {"name": "task", "payload": "ignored", "job_id": "dup-1"},
        ],
    )
    assert [j.payload for j in jobs] == ["new", "original"]
    assert jobs[1].id == "dup-1"
    assert counts(q) == {**NO_JOBS, "waiting": 2}


def test_job_id_reusable_after_completed_job_is_not_kept(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "first", job_id="once")
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, "once") is None and drained(q))
    again = q.enqueue(QUEUE, "task", "second", job_id="once")
    assert again.id == "once"
    assert again.payload == "second"
    assert rec.wait(2)
    assert rec.payloads() == ["first", "second"]


@pytest.mark.parametrize("job_id", ["123", "0", "a:b", ":", "queue:1", ""])
def test_invalid_job_id_refused(q, job_id):
    with pytest.raises(ValueError):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert counts(q) == NO_JOBS


@pytest.mark.parametrize("job_id", [5, b"abc", ["a"]])
def test_non_str_job_id_refused(q, job_id):
    with pytest.raises((TypeError, ValueError)):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert counts(q) == NO_JOBS


@pytest.mark.parametrize("job_id", ["order-1", "1a", "a1", "12.5", "x", "ünïcödé 1"])
def test_custom_job_ids_round_trip(q, job_id):
    job = q.enqueue(QUEUE, "task", None, job_id=job_id)
    assert job.id == job_id
    assert q.get_job(QUEUE, job_id).id == job_id


def test_queue_chosen_ids_are_distinct_increasing_decimal_strings(q):
    # Ids are per queue (get_job takes the queue), like BullMQ's per-queue counter.
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(30)]
    jobs += q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(10)])
    jobs.append(q.enqueue(QUEUE, "task", None, job_id="custom"))
    jobs.append(q.enqueue(QUEUE, "task", None))
    ids = [job.id for job in jobs if job.id != "custom"]
    assert all(isinstance(i, str) and re.fullmatch("[0-9]+", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    # never reused once the jobs are gone
    q.register_worker(QUEUE, Recorder())
    assert wait_for(lambda: drained(q))
    assert int(q.enqueue(QUEUE, "task", None).id) > max(int(i) for i in ids)


# --------------------------------------------------------------------------
# enqueue_many
# --------------------------------------------------------------------------


def test_enqueue_many_returns_jobs_in_order(q):
    items = [{"name": f"n{i}", "payload": {"i": i}} for i in range(5)]
    items.append({"name": "custom", "payload": None, "job_id": "my-id"})
    jobs = q.enqueue_many(QUEUE, items)
    assert [j.name for j in jobs] == [item["name"] for item in items]
    assert [j.payload for j in jobs] == [item["payload"] for item in items]
    assert jobs[-1].id == "my-id"
    assert len({j.id for j in jobs}) == len(jobs)
    for job in jobs:
        assert q.get_job(QUEUE, job.id).payload == job.payload
    assert counts(q) == {**NO_JOBS, "waiting": 6}
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(6)
    assert [j.id for j in rec.jobs] == [j.id for j in jobs]


def test_enqueue_many_applies_each_items_options(q):
    jobs = q.enqueue_many(
        QUEUE,
        [
            {"name": "a", "payload": 1, "delay_ms": 60_000},
            {"name": "b", "payload": 2, "priority": 4, "attempts": 3, "backoff": 10},
            {"name": "c", "payload": 3},
        ],
    )
    assert [j.state for j in jobs] == ["delayed", "waiting", "waiting"]
    assert [(j.priority, j.attempts) for j in jobs] == [(0, 1), (4, 3), (0, 1)]
    assert counts(q) == {**NO_JOBS, "waiting": 2, "delayed": 1}
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    assert rec.wait(2)
    assert rec.payloads() == [3, 2]


def test_enqueue_many_empty(q):
    assert q.enqueue_many(QUEUE, []) == []
    assert counts(q) == NO_JOBS


BAD_ITEMS = {
    "set payload": ({"name": "t", "payload": {1, 2}}, jexkv.SerializationError),
    "negative priority": ({"name": "t", "payload": None, "priority": -1}, ValueError),
    "digit job_id": ({"name": "t", "payload": None, "job_id": "12"}, ValueError),
    "empty name": ({"name": "", "payload": None}, ValueError),
    "delay True": ({"name": "t", "payload": None, "delay_ms": True}, ValueError),
    "unknown key": ({"name": "t", "payload": None, "colour": "red"}, (TypeError, ValueError)),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_enqueue_many_is_all_or_nothing(q, case):
    bad, error = BAD_ITEMS[case]
    good = {"name": "t", "payload": "ok"}
    with pytest.raises(error):
        q.enqueue_many(QUEUE, [good, dict(good), bad, dict(good)])
    assert counts(q) == NO_JOBS
    assert len(q.enqueue_many(QUEUE, [good, dict(good)])) == 2
    assert counts(q) == {**NO_JOBS, "waiting": 2}


# --------------------------------------------------------------------------
# inspection: counts, get_job, Job
# --------------------------------------------------------------------------


def test_counts_each_state(open_queue_on_same_backend, make_event):
    q = open_queue_on_same_backend(keep_completed=10)
    started, release = make_event(), make_event()

    def handler(job):
        if job.name == "fail":
            raise ValueError("boom")
        if job.name == "hold":
            started.set()
            release.wait(HANDLER_WAIT)

    assert counts(q) == NO_JOBS
    q.register_worker(QUEUE, handler, concurrency=1)
    done = q.enqueue(QUEUE, "done", None)
    assert wait_for(lambda: counts(q)["completed"] == 1)
    failed = q.enqueue(QUEUE, "fail", None)
    assert wait_for(lambda: counts(q)["dead"] == 1)
    held = q.enqueue(QUEUE, "hold", None)
    assert started.wait(WAIT)
    waiting = [q.enqueue(QUEUE, "done", i) for i in range(2)]
    delayed = q.enqueue(QUEUE, "done", None, delay_ms=60_000)

    assert counts(q) == {"waiting": 2, "delayed": 1, "active": 1, "completed": 1, "dead": 1}
    assert state_of(q, done.id) == "completed"
    assert state_of(q, failed.id) == "dead"
    assert state_of(q, held.id) == "active"
    assert [state_of(q, j.id) for j in waiting] == ["waiting", "waiting"]
    assert state_of(q, delayed.id) == "delayed"

    release.set()
    assert wait_for(lambda: counts(q)["completed"] == 4)
    assert counts(q) == {**NO_JOBS, "delayed": 1, "completed": 4, "dead": 1}


def test_counts_are_per_queue(q):
    q.enqueue(QUEUE, "task", None)
    assert counts(q, "other") == NO_JOBS
    assert counts(q) == {**NO_JOBS, "waiting": 1}


def test_get_job_fields_through_the_lifecycle(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)
    before_ms = time.time() * 1000
    job = q.enqueue(QUEUE, "send", {"to": "a@b.c"}, attempts=3, priority=2)
    after_ms = time.time() * 1000
    for snapshot in (job, q.get_job(QUEUE, job.id)):
        assert isinstance(snapshot, jexkv.Job)
        assert isinstance(snapshot.id, str)
        assert snapshot.id == job.id
        assert snapshot.queue == QUEUE
        assert snapshot.name == "send"
        assert snapshot.payload == {"to": "a@b.c"}
        assert snapshot.attempts == 3
        assert snapshot.attempts_made == 0
        assert snapshot.priority == 2
        assert type(snapshot.created_at_ms) is int
        assert before_ms - 5000 <= snapshot.created_at_ms <= after_ms + 5000
        assert snapshot.state == "waiting"
        assert snapshot.error is None
        assert snapshot.result is None

    rec = Recorder(lambda job: {"sent": True})
    q.register_worker(QUEUE, rec)
    assert wait_for(lambda: state_of(q, job.id) == "completed")
    [seen] = rec.jobs
    assert isinstance(seen, jexkv.Job)
    assert (seen.id, seen.queue, seen.name, seen.payload) == (job.id, QUEUE, "send", job.payload)
    assert (seen.attempts, seen.attempts_made, seen.priority) == (3, 0, 2)
    assert seen.created_at_ms == job.created_at_ms
    assert seen.state == "active"

    done = q.get_job(QUEUE, job.id)
    assert done.state == "completed"
    assert done.result == {"sent": True}
    assert done.error is None
    assert done.payload == {"to": "a@b.c"}
    assert done.created_at_ms == job.created_at_ms


def test_get_job_unknown_or_other_queue_is_none(q):
    job = q.enqueue(QUEUE, "task", None)
    assert q.get_job(QUEUE, "no-such-job") is None
    assert q.get_job("other", job.id) is None


def test_completed_job_not_kept_by_default(q):
    rec = Recorder(lambda job: "result")
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None)
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, job.id) is None and drained(q))
    assert counts(q) == NO_JOBS


def test_job_is_an_immutable_snapshot(q):
    payload = {"a": [1]}
    job = q.enqueue(QUEUE, "task", payload)
    with pytest.raises(AttributeError):
        job.state = "completed"
    payload["a"].append(2)
    job.payload["a"].append(3)
    assert q.get_job(QUEUE, job.id).payload == {"a": [1]}


def test_payload_comes_back_as_json_would_decode_it(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", {"t": (1, 2), "n": None, "f": 1.5, "s": "ü"})
    assert rec.wait(1)
    assert rec.payloads() == [{"t": [1, 2], "n": None, "f": 1.5, "s": "ü"}]


def test_keep_completed_keeps_newest_n_with_results(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=2)
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(5)]
    q.register_worker(QUEUE, Recorder(lambda job: job.payload * 10))
    assert wait_for(lambda: state_of(q, jobs[-1].id) == "completed")
    assert wait_for(lambda: counts(q) == {**NO_JOBS, "completed": 2})
    assert [q.get_job(QUEUE, j.id) for j in jobs[:3]] == [None, None, None]
    kept = [q.get_job(QUEUE, j.id) for j in jobs[3:]]
    assert [(j.state, j.result) for j in kept] == [("completed", 30), ("completed", 40)]


def test_keep_dead_keeps_newest_n(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_dead=2)

    def then(job):
        time.sleep(0.005)  # deaths a few ms apart
        raise ValueError("boom")

    rec = Recorder(then)
    jobs = [q.enqueue(QUEUE, "task", i) for i in range(5)]
    q.register_worker(QUEUE, rec)
    assert rec.wait(5)
    assert wait_for(lambda: drained(q) and counts(q)["dead"] == 2)
    assert [j.payload for j in q.dead_letters(QUEUE)] == [4, 3]
    assert all(j.error == "ValueError: boom" for j in q.dead_letters(QUEUE))
    assert [q.get_job(QUEUE, j.id) for j in jobs[:3]] == [None, None, None]


def test_keep_dead_zero_keeps_none(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_dead=0)
    rec = Recorder(explode_with_boom)
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", None)
    assert rec.wait(1)
    assert wait_for(lambda: q.get_job(QUEUE, job.id) is None and drained(q))
    assert counts(q) == NO_JOBS
    assert q.dead_letters(QUEUE) == []


# --------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------


def test_second_register_worker_on_same_queue_raises(q):
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    with pytest.raises(jexkv.ConfigError):
        q.register_worker(QUEUE, Recorder())
    with pytest.raises(jexkv.ConfigError):
        q.register_worker(QUEUE, rec)
    other = Recorder()
    q.register_worker("other", other)  # another queue gets its own worker
    q.enqueue(QUEUE, "task", "mine")
    q.enqueue("other", "task", "theirs")
    assert rec.wait(1)
    assert other.wait(1)
    assert rec.payloads() == ["mine"]
    assert other.payloads() == ["theirs"]


def test_concurrency_4_runs_4_at_once(q):
    barrier = threading.Barrier(4)
    passed: list = []
    lock = threading.Lock()

    def handler(job):
        barrier.wait(timeout=5)  # BrokenBarrierError unless 4 handlers run at once
        with lock:
            passed.append(job.id)

    q.register_worker(QUEUE, handler, concurrency=4)
    for i in range(4):
        q.enqueue(QUEUE, "task", i)
    assert wait_for(lambda: len(passed) == 4, timeout=10)
    assert counts(q)["dead"] == 0


def test_concurrency_is_an_upper_bound(q):
    lock = threading.Lock()
    active = [0]
    most = [0]

    def handler(job):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1

    rec = Recorder(handler)
    for i in range(12):
        q.enqueue(QUEUE, "task", i)
    q.register_worker(QUEUE, rec, concurrency=3)
    assert rec.wait(12)
    assert wait_for(lambda: drained(q))
    assert 1 <= most[0] <= 3


def test_2000_jobs_concurrency_8_each_run_exactly_once(q):
    ran: list = []
    lock = threading.Lock()

    def handler(job):
        with lock:
            ran.append(job.id)

    jobs = q.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(1000)])
    q.register_worker(QUEUE, handler, concurrency=8)
    for start in range(1000, 2000, 100):  # more arrive while the workers run
        jobs += q.enqueue_many(
            QUEUE, [{"name": "task", "payload": i} for i in range(start, start + 100)]
        )
    assert wait_for(lambda: len(ran) >= 2000 and drained(q), timeout=30)
    expected = Counter(job.id for job in jobs)
    assert len(expected) == 2000
    with lock:
        assert Counter(ran) == expected
    assert counts(q) == NO_JOBS


def test_two_worker_queue_objects_share_jobs_exactly_once(open_queue_on_same_backend):
    producer = open_queue_on_same_backend()
    first, second = open_queue_on_same_backend(), open_queue_on_same_backend()
    rec = Recorder()
    first.register_worker(QUEUE, rec, concurrency=4)
    second.register_worker(QUEUE, rec, concurrency=4)
    jobs = producer.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(300)])
    assert wait_for(lambda: rec.count() >= 300 and drained(producer), timeout=20)
    assert Counter(j.id for j in rec.jobs) == Counter(j.id for j in jobs)


def test_failing_handler_does_not_stop_the_worker(q):
    def then(job):
        if job.payload.startswith("bad"):
            raise RuntimeError("handler failed")
        return job.payload

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    for payload in ["bad-1", "good-1", "bad-2", "good-2"]:
        q.enqueue(QUEUE, "task", payload)
    assert rec.wait(4)
    assert wait_for(lambda: drained(q))
    assert rec.payloads() == ["bad-1", "good-1", "bad-2", "good-2"]
    assert counts(q) == {**NO_JOBS, "dead": 2}
    q.enqueue(QUEUE, "task", "good-3")
    assert rec.wait(5)


def test_non_json_result_fails_the_attempt(q):
    rec = Recorder(lambda job: {1, 2} if job.payload == "bad" else "fine")
    q.register_worker(QUEUE, rec)
    job = q.enqueue(QUEUE, "task", "bad")
    q.enqueue(QUEUE, "task", "good")
    assert rec.wait(2)
    assert wait_for(lambda: drained(q) and counts(q)["dead"] == 1)
    [dead] = q.dead_letters(QUEUE)
    assert dead.id == job.id
    assert dead.error.startswith("SerializationError")


def test_handler_exception_is_logged_with_job_id(q, caplog):
    caplog.set_level(logging.DEBUG, logger="jexkv")
    q.register_worker(QUEUE, explode_with_boom)
    q.enqueue(QUEUE, "task", None, job_id="log-me-42")

    def logged():
        return [
            r
            for r in list(caplog.records)
            if (r.name == "jexkv" or r.name.startswith("jexkv.")) and "log-me-42" in r.getMessage()
        ]

    assert wait_for(logged)
    assert any(r.levelno >= logging.WARNING for r in logged())


def test_namespaces_isolate_queues(q, open_queue_on_same_backend):
    a = open_queue_on_same_backend(namespace="a:")
    b = open_queue_on_same_backend(namespace="b:")
    a.enqueue(QUEUE, "task", "from-a", job_id="same-id")
    from_b = b.enqueue(QUEUE, "task", "from-b", job_id="same-id")
    assert from_b.payload == "from-b"  # not deduplicated against a's job
    assert counts(a) == counts(b) == {**NO_JOBS, "waiting": 1}
    assert counts(q) == NO_JOBS
    assert a.get_job(QUEUE, "same-id").payload == "from-a"
    assert q.get_job(QUEUE, "same-id") is None

    rec_b = Recorder()
    b.register_worker(QUEUE, rec_b)
    assert rec_b.wait(1)
    assert wait_for(lambda: drained(b))
    assert rec_b.payloads() == ["from-b"]
    assert counts(a) == {**NO_JOBS, "waiting": 1}

    rec_a = Recorder()
    a.register_worker(QUEUE, rec_a)
    assert rec_a.wait(1)
    assert rec_a.payloads() == ["from-a"]
    assert rec_b.payloads() == ["from-b"]


def test_producer_and_worker_on_separate_queue_objects(open_queue_on_same_backend):
    producer = open_queue_on_same_backend()
    worker = open_queue_on_same_backend(keep_completed=100)
    rec = Recorder(lambda job: job.payload * 2)
    worker.register_worker(QUEUE, rec)
    jobs = [producer.enqueue(QUEUE, "double", i) for i in range(20)]
    assert rec.wait(20)
    assert rec.payloads() == list(range(20))
    assert wait_for(lambda: all(state_of(producer, j.id) == "completed" for j in jobs))
    assert [producer.get_job(QUEUE, j.id).result for j in jobs] == [2 * i for i in range(20)]


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

BAD_ENQUEUE = {
    "empty queue": (lambda q: q.enqueue("", "task"), ValueError),
    "non-str queue": (lambda q: q.enqueue(5, "task"), TypeError),
    "None queue": (lambda q: q.enqueue(None, "task"), TypeError),
    "empty name": (lambda q: q.enqueue(QUEUE, ""), ValueError),
    "non-str name": (lambda q: q.enqueue(QUEUE, 5), TypeError),
    "set payload": (lambda q: q.enqueue(QUEUE, "t", {1, 2}), jexkv.SerializationError),
    "object payload": (lambda q: q.enqueue(QUEUE, "t", object()), jexkv.SerializationError),
    "nan payload": (lambda q: q.enqueue(QUEUE, "t", math.nan), jexkv.SerializationError),
    "nested set": (lambda q: q.enqueue(QUEUE, "t", {"a": [{1}]}), jexkv.SerializationError),
    "negative delay": (lambda q: q.enqueue(QUEUE, "t", delay_ms=-1), ValueError),
    "delay True": (lambda q: q.enqueue(QUEUE, "t", delay_ms=True), ValueError),
    "float delay": (lambda q: q.enqueue(QUEUE, "t", delay_ms=1.5), ValueError),
    "attempts 0": (lambda q: q.enqueue(QUEUE, "t", attempts=0), ValueError),
    "attempts True": (lambda q: q.enqueue(QUEUE, "t", attempts=True), ValueError),
    "negative priority": (lambda q: q.enqueue(QUEUE, "t", priority=-1), ValueError),
    "priority True": (lambda q: q.enqueue(QUEUE, "t", priority=True), ValueError),
    "backoff -1": (lambda q: q.enqueue(QUEUE, "t", attempts=2, backoff=-1), ValueError),
    "backoff True": (lambda q: q.enqueue(QUEUE, "t", attempts=2, backoff=True), ValueError),
    "backoff str": (lambda q: q.enqueue(QUEUE, "t", attempts=2, backoff="fast"), ValueError),
    # Times and counts are refused as ttl_ms is: ValueError, whatever the wrong type.
    "float priority": (lambda q: q.enqueue(QUEUE, "t", priority=0.5), ValueError),
    "str attempts": (lambda q: q.enqueue(QUEUE, "t", attempts="3"), ValueError),
}


@pytest.mark.parametrize("value", [math.nan, [math.inf], {"a": -math.inf}])
def test_nan_payload_refused_with_one_message(q, value):
    with pytest.raises(jexkv.SerializationError, match=r"\(NaN and infinities are not JSON\)"):
        q.enqueue(QUEUE, "t", value)
    assert counts(q) == NO_JOBS


@pytest.mark.parametrize("case", list(BAD_ENQUEUE))
def test_bad_enqueue_refused_and_nothing_enqueued(q, case):
    call, error = BAD_ENQUEUE[case]
    with pytest.raises(error):
        call(q)
    assert counts(q) == NO_JOBS
    assert counts(q, "t") == NO_JOBS


BAD_BACKOFFS = {
    "fixed negative": lambda: jexkv.Backoff.fixed(-1),
    "exponential negative": lambda: jexkv.Backoff.exponential(-1),
    "max_ms negative": lambda: jexkv.Backoff.exponential(50, max_ms=-1),
    "jitter above 1": lambda: jexkv.Backoff.exponential(50, jitter=1.5),
    "jitter below 0": lambda: jexkv.Backoff.exponential(50, jitter=-0.1),
}


@pytest.mark.parametrize("case", list(BAD_BACKOFFS))
def test_bad_backoff_refused(q, case):
    with pytest.raises((TypeError, ValueError)):
        q.enqueue(QUEUE, "t", attempts=2, backoff=BAD_BACKOFFS[case]())
    assert counts(q) == NO_JOBS


BAD_REGISTER = {
    "non-callable handler": (lambda q: q.register_worker(QUEUE, "handler"), TypeError),
    "None handler": (lambda q: q.register_worker(QUEUE, None), TypeError),
    "concurrency 0": (lambda q: q.register_worker(QUEUE, print, concurrency=0), ValueError),
    "concurrency -1": (lambda q: q.register_worker(QUEUE, print, concurrency=-1), ValueError),
    "concurrency True": (
        lambda q: q.register_worker(QUEUE, print, concurrency=True),
        (TypeError, ValueError),
    ),
    "concurrency float": (
        lambda q: q.register_worker(QUEUE, print, concurrency=2.0),
        (TypeError, ValueError),
    ),
    "empty queue": (lambda q: q.register_worker("", print), ValueError),
    "non-str queue": (lambda q: q.register_worker(5, print), TypeError),
}


@pytest.mark.parametrize("case", list(BAD_REGISTER))
def test_bad_register_worker_refused_and_registers_nothing(q, case):
    call, error = BAD_REGISTER[case]
    with pytest.raises(error):
        call(q)
    rec = Recorder()
    q.register_worker(QUEUE, rec)  # no half-registered worker is left behind
    q.enqueue(QUEUE, "task", "ok")
    assert rec.wait(1)
    assert rec.payloads() == ["ok"]


def test_unknown_option_raises_config_error(open_queue_on_same_backend):
    with pytest.raises(jexkv.ConfigError, match="colour"):
        open_queue_on_same_backend(colour="red")


@pytest.mark.parametrize(
    "options",
    [
        {"keep_completed": -1},
        {"keep_completed": True},
        {"keep_dead": -1},
        {"lease_ms": 0},
        {"max_stalls": -1},
    ],
    ids=["keep_completed=-1", "keep_completed=True", "keep_dead=-1", "lease_ms=0", "max_stalls=-1"],
)
def test_bad_option_values_raise_config_error(open_queue_on_same_backend, options):
    with pytest.raises(jexkv.ConfigError):
        open_queue_on_same_backend(**options)


def test_options_from_query_string_and_keywords_win(queue_url):
    with_option = queue_url + ("&" if "?" in queue_url else "?") + "keep_completed=3"
    kept = jexkv.open_queue(with_option)
    try:
        kept.register_worker(QUEUE, Recorder())
        job = kept.enqueue(QUEUE, "task", None)
        assert wait_for(lambda: state_of(kept, job.id) == "completed")
    finally:
        close_within(kept)
    not_kept = jexkv.open_queue(with_option, keep_completed=0)
    try:
        rec = Recorder()
        not_kept.register_worker("other", rec)
        job = not_kept.enqueue("other", "task", None)
        assert rec.wait(1)
        assert wait_for(lambda: not_kept.get_job("other", job.id) is None and drained(not_kept))
        assert counts(not_kept, "other") == NO_JOBS
    finally:
        close_within(not_kept)


# --------------------------------------------------------------------------
# lifecycle
# --------------------------------------------------------------------------


def test_close_waits_for_running_handler(open_queue_on_same_backend, make_event):
    worker = open_queue_on_same_backend(keep_completed=10)
    observer = open_queue_on_same_backend()
    started, finished = make_event(), make_event()

    def handler(job):
        started.set()
        time.sleep(0.3)
        finished.set()
        return "done"

    worker.register_worker(QUEUE, handler)
    job = worker.enqueue(QUEUE, "task", None)
    assert started.wait(WAIT)
    close_within(worker)
    assert finished.is_set()
    done = observer.get_job(QUEUE, job.id)
    assert done is not None
    assert (done.state, done.result) == ("completed", "done")
    with pytest.raises(jexkv.ClosedError):
        worker.enqueue(QUEUE, "task", None)


def test_close_stops_fetching_and_leaves_waiting_jobs(open_queue_on_same_backend, make_event):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    started, release = make_event(), make_event()

    def then(job):
        if job.payload == "first":
            started.set()
            release.wait(HANDLER_WAIT)

    rec = Recorder(then)
    worker.register_worker(QUEUE, rec)
    worker.enqueue(QUEUE, "task", "first")
    assert started.wait(WAIT)
    second = worker.enqueue(QUEUE, "task", "second")
    closer = threading.Thread(target=worker.close, daemon=True)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive()  # close() waits for the running handler
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert rec.payloads() == ["first"]
    assert state_of(observer, second.id) == "waiting"

    rec2 = Recorder()
    observer.register_worker(QUEUE, rec2)
    assert rec2.wait(1)
    assert rec2.payloads() == ["second"]


def test_close_right_after_enqueue_returns_and_loses_nothing(open_queue_on_same_backend):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    rec = Recorder()
    worker.register_worker(QUEUE, rec)
    worker.enqueue(QUEUE, "task", "warm-up")
    assert rec.wait(1)
    assert wait_for(lambda: drained(worker))
    job = worker.enqueue(QUEUE, "task", "last")
    close_within(worker)  # no handler is slow: close() must not hang
    assert rec.count(job.id) == 1 or state_of(observer, job.id) == "waiting"
    assert counts(observer)["active"] == 0


def test_close_while_jobs_stream_in_loses_nothing(open_queue_on_same_backend):
    worker = open_queue_on_same_backend()
    observer = open_queue_on_same_backend()
    rec = Recorder()
    worker.register_worker(QUEUE, rec, concurrency=2)
    jobs = worker.enqueue_many(QUEUE, [{"name": "task", "payload": i} for i in range(300)])
    assert rec.wait(1)
    close_within(worker)
    ran = Counter(job.id for job in rec.jobs)
    assert all(n == 1 for n in ran.values())
    assert counts(observer)["active"] == 0
    # every job either ran once or is still waiting for another worker
    assert [j.id for j in jobs if j.id not in ran and state_of(observer, j.id) != "waiting"] == []


def test_close_with_timeout_returns_while_handler_still_runs(q, make_event):
    started, release = make_event(), make_event()
    handler_threads: list = []

    def handler(job):
        handler_threads.append(threading.current_thread())
        started.set()
        release.wait(HANDLER_WAIT)

    q.register_worker(QUEUE, handler)
    q.enqueue(QUEUE, "task", None)
    assert started.wait(WAIT)
    t0 = time.monotonic()
    try:
        q.close(timeout_ms=200)
        took = time.monotonic() - t0
        assert 0.2 - 0.02 <= took < 0.2 + LATE
        with pytest.raises(jexkv.ClosedError):
            q.counts(QUEUE)
    finally:
        release.set()
        handler_threads[0].join(WAIT)
    assert not handler_threads[0].is_alive()


CLOSED_CALLS = {
    "enqueue": lambda q: q.enqueue(QUEUE, "task", None),
    "enqueue_many": lambda q: q.enqueue_many(QUEUE, [{"name": "task", "payload": None}]),
    "register_worker": lambda q: q.register_worker("fresh", lambda job: None),
    "get_job": lambda q: q.get_job(QUEUE, "1"),
    "counts": lambda q: q.counts(QUEUE),
    "dead_letters": lambda q: q.dead_letters(QUEUE),
    "retry_dead": lambda q: q.retry_dead(QUEUE),
    "purge_dead": lambda q: q.purge_dead(QUEUE),
    "pause": lambda q: q.pause(QUEUE),
    "resume": lambda q: q.resume(QUEUE),
    "is_paused": lambda q: q.is_paused(QUEUE),
}


@pytest.mark.parametrize("method", list(CLOSED_CALLS))
def test_every_method_raises_after_close(q, method):
    q.enqueue(QUEUE, "task", None)
    q.close()
    with pytest.raises(jexkv.ClosedError):
        CLOSED_CALLS[method](q)


def test_close_is_idempotent(q):
    q.register_worker(QUEUE, Recorder())
    close_within(q)
    assert q.close() is None
    assert q.close() is None
    assert q.close(timeout_ms=10) is None


def test_queue_is_a_context_manager(open_queue_on_same_backend):
    queue = open_queue_on_same_backend()
    with queue as entered:
        assert entered is queue
        entered.enqueue(QUEUE, "task", None)
    with pytest.raises(jexkv.ClosedError):
        queue.counts(QUEUE)


def test_closing_one_queue_leaves_others_working(q, open_queue_on_same_backend):
    other = open_queue_on_same_backend()
    job = q.enqueue(QUEUE, "task", "x")
    q.close()
    assert other.get_job(QUEUE, job.id).payload == "x"
    rec = Recorder()
    other.register_worker(QUEUE, rec)
    assert rec.wait(1)


def test_close_stops_every_thread_it_started(queue_url):
    before = jexkv_threads()
    queue = jexkv.open_queue(queue_url)
    try:
        rec = Recorder()
        queue.register_worker(QUEUE, rec, concurrency=3)
        queue.enqueue(QUEUE, "task", None)
        assert rec.wait(1)
    finally:
        close_within(queue)
    assert wait_for(lambda: not (jexkv_threads() - before))


# --------------------------------------------------------------------------
# jobs(): listing one state
# --------------------------------------------------------------------------


def test_jobs_lists_waiting_in_run_order_and_delayed_by_due_time(q):
    late = q.enqueue(QUEUE, "late", None, priority=3)
    first = q.enqueue(QUEUE, "first", None)
    second = q.enqueue(QUEUE, "second", None)
    soon = q.enqueue(QUEUE, "soon", None, delay_ms=60_000)
    sooner = q.enqueue(QUEUE, "sooner", None, delay_ms=30_000)
    assert [j.id for j in q.jobs(QUEUE)] == [first.id, second.id, late.id]
    assert [j.id for j in q.jobs(QUEUE, "waiting", limit=2)] == [first.id, second.id]
    assert [j.id for j in q.jobs(QUEUE, "delayed")] == [sooner.id, soon.id]
    assert all(j.state == "delayed" for j in q.jobs(QUEUE, "delayed"))
    assert q.jobs(QUEUE, "active") == []


def test_jobs_lists_completed_and_dead_newest_first(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=10)
    done = threading.Event()
    seen: list = []

    def handler(job):
        seen.append(job.id)
        if len(seen) == 4:
            done.set()
        if job.name == "bad":
            raise jexkv.Unrecoverable("no")
        return job.payload

    q.register_worker(QUEUE, handler)
    jobs = [q.enqueue(QUEUE, name, i) for i, name in enumerate(["ok", "bad", "ok", "bad"])]
    assert done.wait(WAIT)
    assert wait_for(lambda: q.counts(QUEUE)["completed"] == 2 and q.counts(QUEUE)["dead"] == 2)
    assert [j.id for j in q.jobs(QUEUE, "completed")] == [jobs[2].id, jobs[0].id]
    assert [j.result for j in q.jobs(QUEUE, "completed")] == [2, 0]
    assert [j.id for j in q.jobs(QUEUE, "dead")] == [jobs[3].id, jobs[1].id]
    assert [j.id for j in q.jobs(QUEUE, "dead")] == [j.id for j in q.dead_letters(QUEUE)]


@pytest.mark.parametrize("state", ["", "failed", "WAITING", None])
def test_jobs_refuses_an_unknown_state(q, state):
    with pytest.raises(ValueError):
        q.jobs(QUEUE, state)


def test_jobs_refuses_a_bad_limit(q):
    for limit in (-1, 1.5, True, "3"):
        with pytest.raises((TypeError, ValueError)):
            q.jobs(QUEUE, "waiting", limit=limit)


# --------------------------------------------------------------------------
# pause and resume
# --------------------------------------------------------------------------


def test_a_queue_is_not_paused_by_default(q):
    assert q.is_paused(QUEUE) is False


def test_paused_queue_is_not_fetched_until_resumed(q):
    """A live worker on another queue shows the workers run while the paused one waits."""
    q.pause(QUEUE)
    assert q.is_paused(QUEUE) is True
    for i in range(3):
        q.enqueue(QUEUE, "task", i)
    paused, other = Recorder(), Recorder()
    q.register_worker(QUEUE, paused)
    q.register_worker("other", other)
    q.enqueue("other", "task", "x")
    assert other.wait(1)
    time.sleep(0.3)
    assert paused.count() == 0
    assert counts(q)["waiting"] == 3
    q.resume(QUEUE)
    assert q.is_paused(QUEUE) is False
    assert paused.wait(3)
    assert paused.payloads() == [0, 1, 2]


def test_pause_is_seen_by_every_queue_object_on_the_backend(open_queue_on_same_backend):
    producer, worker = open_queue_on_same_backend(), open_queue_on_same_backend()
    producer.pause(QUEUE)
    assert worker.is_paused(QUEUE) is True
    rec = Recorder()
    worker.register_worker(QUEUE, rec)
    producer.enqueue(QUEUE, "task", "held")
    time.sleep(0.3)
    assert rec.count() == 0
    producer.resume(QUEUE)
    assert rec.wait(1)


def test_pause_lets_the_running_job_finish(q, make_event):
    started, release = make_event(), make_event()

    def then(job):
        started.set()
        release.wait(HANDLER_WAIT)
        return "done"

    rec = Recorder(then)
    q.register_worker(QUEUE, rec)
    first = q.enqueue(QUEUE, "task", 1)
    assert started.wait(WAIT)
    q.pause(QUEUE)
    q.enqueue(QUEUE, "task", 2)
    release.set()
    assert wait_for(lambda: counts(q)["active"] == 0)
    assert state_of(q, first.id) is None  # completed, not kept
    time.sleep(0.2)
    assert rec.count() == 1
    assert counts(q)["waiting"] == 1
    q.resume(QUEUE)
    assert rec.wait(2)


def test_delayed_jobs_of_a_paused_queue_wait_for_the_resume(q):
    q.pause(QUEUE)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    q.enqueue(QUEUE, "task", "later", delay_ms=50)
    time.sleep(0.3)
    assert rec.count() == 0
    assert counts(q)["waiting"] == 1  # due, held by the pause
    q.resume(QUEUE)
    assert rec.wait(1)


def test_pause_applies_to_one_queue_only(q):
    q.pause(QUEUE)
    assert q.is_paused("other") is False
    q.resume("other")  # resuming a queue that is not paused is a no-op
    assert q.is_paused(QUEUE) is True
    q.resume(QUEUE)
    q.resume(QUEUE)
    assert q.is_paused(QUEUE) is False


# Issue 13: a custom job id may not be the name of one of the queue's own keys (on Redis the
# job's hash would overwrite that key), on every adapter alike.
# jexkv's (jexkv/redis/scripts.py KEY_NAMES, its Lua) and BullMQ 6's (QueueKeys, scripts).
QUEUE_KEY_NAMES = [
    "active", "completed", "de", "delay", "delayed", "dn", "events", "failed", "id", "limiter",
    "marker", "meta", "metrics", "paused", "pc", "priority", "prioritized", "repeat", "stalled",
    "stalled-check", "wait", "waiting", "waiting-children",
]  # fmt: skip


@pytest.mark.parametrize("job_id", QUEUE_KEY_NAMES)
def test_job_id_naming_a_queue_key_is_refused(q, job_id):
    with pytest.raises(ValueError, match="queue's own keys"):
        q.enqueue(QUEUE, "task", None, job_id=job_id)
    with pytest.raises(ValueError, match="queue's own keys"):
        q.enqueue_many(QUEUE, [{"name": "task"}, {"name": "task", "job_id": job_id}])
    assert counts(q) == NO_JOBS
    assert q.get_job(QUEUE, job_id) is None
    assert q.retry_dead(QUEUE, job_id) == 0
    job = q.enqueue(QUEUE, "task", "after")
    assert q.get_job(QUEUE, job.id).payload == "after"
    assert counts(q) == {**NO_JOBS, "waiting": 1}


@pytest.mark.parametrize("job_id", ["wait-1", "Wait", "events2", "my-meta", "de-1", "ids"])
def test_job_ids_near_queue_key_names_are_accepted(q, job_id):
    assert q.enqueue(QUEUE, "task", None, job_id=job_id).id == job_id
    assert q.get_job(QUEUE, job_id).id == job_id


@pytest.mark.parametrize("job_id", ["a:lock", "1:logs", "x:"])
def test_get_and_retry_of_an_id_no_job_can_have(q, job_id):
    q.enqueue(QUEUE, "task", None)
    assert q.get_job(QUEUE, job_id) is None
    assert q.retry_dead(QUEUE, job_id) == 0


LONE = "a\ud800b"


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.enqueue(QUEUE, "task", None, job_id=LONE),
        lambda q: q.enqueue(QUEUE, LONE, None),
        lambda q: q.enqueue(LONE, "task", None),
        lambda q: q.enqueue_many(QUEUE, [{"name": "task"}, {"name": "t", "job_id": LONE}]),
        lambda q: q.get_job(QUEUE, LONE),
        lambda q: q.retry_dead(QUEUE, LONE),
        lambda q: q.counts(LONE),
        lambda q: q.jobs(LONE),
    ],
    ids=["job_id", "name", "queue", "enqueue_many", "get_job", "retry_dead", "counts", "jobs"],
)
def test_lone_surrogate_in_names_and_ids_is_refused(q, call):
    with pytest.raises(ValueError, match="lone surrogate"):
        call(q)
    assert counts(q) == NO_JOBS


def test_namespace_with_a_lone_surrogate_is_refused(open_queue_on_same_backend):
    with pytest.raises(ValueError, match="namespace .* lone surrogate"):
        open_queue_on_same_backend(namespace="ns\udc80")


def test_payload_and_result_with_lone_surrogates_round_trip(open_queue_on_same_backend):
    q = open_queue_on_same_backend(keep_completed=1)
    payload = {"s": "x\udfffy", "l": ["\ud800"], "\udbff": "k", "text": "ünï € 😀"}
    job = q.enqueue(QUEUE, "task", payload, job_id="lone-1")
    assert job.payload == payload
    assert q.get_job(QUEUE, "lone-1").payload == payload
    q.register_worker(QUEUE, lambda job: [job.payload, "\udc00"])

    def completed():
        job = q.get_job(QUEUE, "lone-1")
        return job is not None and job.state == "completed"

    assert wait_for(completed, timeout=10)
    final = q.get_job(QUEUE, "lone-1")
    assert final.payload == payload
    assert final.result == [payload, "\udc00"]


def test_an_error_message_with_a_lone_surrogate_is_kept_escaped(q):
    def handle(job):
        raise RuntimeError("bad byte \udc80 in input")  # e.g. a filename read with surrogateescape

    q.register_worker(QUEUE, handle)
    job = q.enqueue(QUEUE, "task")
    assert wait_for(lambda: q.counts(QUEUE)["dead"] == 1, timeout=WAIT)
    dead = q.get_job(QUEUE, job.id)
    assert dead.error == "RuntimeError: bad byte \\udc80 in input"
    assert "bad byte \\udc80 in input" in dead.traceback
    assert q.counts(QUEUE) == {**NO_JOBS, "dead": 1}  # the worker lives on
