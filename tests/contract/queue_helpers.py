"""What the TaskQueue contract tests (tests/contract/test_queue_*.py) share: the queue
name and states, deadlines, and helpers (a recording handler, counts, a control worker).

Timing rules: waits use events or ``wait_for`` with deadlines of a few seconds; timing
assertions check correctness (never early, delays in their range) with generous upper bounds,
never speed.
"""

from __future__ import annotations

import threading
import time

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


def holding_first(make_event):
    """(started, release, recorder): a Recorder whose handler holds the job with payload
    "first" until ``release`` is set, and sets ``started`` when it begins."""
    started, release = make_event(), make_event()

    def then(job):
        if job.payload == "first":
            started.set()
            release.wait(HANDLER_WAIT)

    return started, release, Recorder(then)


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


class Control:
    """A worker on the queue ``control`` of the TaskQueue ``worker``, to show that its
    workers are alive and fetching while a test sees that a job of another of its queues
    does not run: ``run()`` enqueues a control job (through ``producer``, ``worker`` itself
    by default, with ``delay_ms``) and waits until it ran, ``rounds`` times one after the
    other. A job that was ready before and could be fetched would have run meanwhile."""

    def __init__(self, worker, producer=None, *, delay_ms: int = 0, queue: str = "control"):
        self.producer = producer if producer is not None else worker
        self.queue, self.delay_ms = queue, delay_ms
        self.rec = Recorder()
        worker.register_worker(queue, self.rec)

    def run(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            ran = self.rec.count() + 1
            self.producer.enqueue(self.queue, "control", "c", delay_ms=self.delay_ms)
            assert self.rec.wait(ran), "a control job did not run: the workers are stuck"
