"""The TaskQueue contract (README, "The task queue") on every adapter: pause and resume.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

from tests.contract.queue_helpers import (
    HANDLER_WAIT,
    QUEUE,
    WAIT,
    Control,
    Recorder,
    counts,
    state_of,
)
from tests.helpers import wait_for


def test_a_queue_is_not_paused_by_default(q):
    assert q.is_paused(QUEUE) is False


def test_paused_queue_is_not_fetched_until_resumed(q):
    """A live worker on another queue shows the workers run while the paused one waits."""
    q.pause(QUEUE)
    assert q.is_paused(QUEUE) is True
    for i in range(3):
        q.enqueue(QUEUE, "task", i)
    paused = Recorder()
    q.register_worker(QUEUE, paused)
    control = Control(q)
    control.run()  # the workers run the jobs enqueued after the paused ones
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
    control = Control(worker, producer)
    producer.enqueue(QUEUE, "task", "held")
    control.run()  # the worker runs the jobs enqueued after the held one
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
    control = Control(q)
    first = q.enqueue(QUEUE, "task", 1)
    assert started.wait(WAIT)
    q.pause(QUEUE)
    q.enqueue(QUEUE, "task", 2)
    release.set()
    assert wait_for(lambda: counts(q)["active"] == 0)
    assert state_of(q, first.id) is None  # completed, not kept
    control.run()  # the workers run the jobs enqueued after job 2
    assert rec.count() == 1
    assert counts(q)["waiting"] == 1
    q.resume(QUEUE)
    assert rec.wait(2)


def test_delayed_jobs_of_a_paused_queue_wait_for_the_resume(q):
    q.pause(QUEUE)
    rec = Recorder()
    q.register_worker(QUEUE, rec)
    control = Control(q, delay_ms=50)
    q.enqueue(QUEUE, "task", "later", delay_ms=50)
    control.run()  # the workers run delayed jobs due after the held one
    assert wait_for(lambda: counts(q)["waiting"] == 1)  # due, held by the pause
    assert rec.count() == 0
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
