"""The TaskQueue contract (README, "The task queue") on every adapter: bad input.

Shared helpers and timing rules: tests/contract/queue_helpers.py.
"""

from __future__ import annotations

import math

import pytest

import jexkv
from tests.contract.queue_helpers import (
    NO_JOBS,
    QUEUE,
    Recorder,
    close_within,
    counts,
    drained,
    state_of,
)
from tests.helpers import wait_for

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
