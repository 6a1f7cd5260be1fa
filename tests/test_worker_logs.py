"""What a worker logs while its backend is down: one warning when the outage starts, one
line with a count when it ends; no traceback per retry. Checked on a backend whose fetch
fails on demand, and on a real Redis server that is stopped and started again."""

from __future__ import annotations

import ast
import logging
import pathlib
import threading

import jexkv
from jexkv.errors import BackendUnavailable
from jexkv.memory.queue import MemoryQueueBackend, MemoryQueueSpace
from jexkv.taskqueue import JobQueue
from tests.helpers import wait_for

JEXKV = pathlib.Path(jexkv.__file__).resolve().parent


class FlakyBackend(MemoryQueueBackend):
    """A memory backend whose fetch raises BackendUnavailable while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__(MemoryQueueSpace())
        self.down = threading.Event()
        self.tries = 0

    def fetch(self, queue, lease_ms, limit):
        if self.down.is_set():
            self.tries += 1
            raise BackendUnavailable("connection refused (injected)")
        return super().fetch(queue, lease_ms, limit)


def _records(caplog, level=logging.WARNING):
    return [r for r in caplog.records if r.name.startswith("jexkv") and r.levelno >= level]


def test_an_outage_logs_one_warning_and_one_recovery_line(caplog):
    caplog.set_level(logging.INFO, logger="jexkv")
    backend = FlakyBackend()
    queue = JobQueue(backend, description="flaky://")
    done = []
    try:
        backend.down.set()
        queue.register_worker("q", lambda job: done.append(job.id), concurrency=4)
        wait_for(lambda: backend.tries >= 12, timeout=20)  # 4 threads, 3+ tries each
        during = _records(caplog)
        assert len(during) == 1, [r.getMessage() for r in during]
        assert "connection refused (injected)" in during[0].getMessage()
        assert during[0].exc_info is None  # no traceback
        backend.down.clear()
        job = queue.enqueue("q", "t")
        wait_for(lambda: done == [job.id], timeout=20)
        after = _records(caplog)
        assert len(after) == 2, [r.getMessage() for r in after]
        message = after[1].getMessage()
        assert "works again" in message and "failed tries" in message
        tries = int(message.split("(")[1].split()[0])
        assert tries >= 12
    finally:
        queue.close(timeout_ms=5000)


def test_an_unexpected_error_keeps_its_traceback_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger="jexkv")

    class Buggy(FlakyBackend):
        def fetch(self, queue, lease_ms, limit):
            self.tries += 1
            raise KeyError("a bug")

    backend = Buggy()
    queue = JobQueue(backend, description="buggy://")
    try:
        queue.register_worker("q", lambda job: None, concurrency=2)
        wait_for(lambda: backend.tries >= 6, timeout=20)
        errors = _records(caplog, logging.ERROR)
        assert len(errors) == 1
        assert errors[0].exc_info is not None and "KeyError" in caplog.text
    finally:
        queue.close(timeout_ms=5000)


def test_a_redis_outage_is_one_warning_not_a_traceback_per_try(caplog, own_redis_server):
    caplog.set_level(logging.INFO, logger="jexkv")
    url = own_redis_server.url()
    done: list[str] = []
    with jexkv.open_queue(url, socket_timeout_ms=500, connect_timeout_ms=500) as queue:
        queue.register_worker("q", lambda job: done.append(job.id), concurrency=3)
        first = queue.enqueue("q", "before")
        wait_for(lambda: done == [first.id], timeout=20)
        own_redis_server.stop()
        wait_for(lambda: any("retrying" in r.getMessage() for r in _records(caplog)), timeout=20)
        threading.Event().wait(2.0)  # several retry rounds of every thread
        own_redis_server.start()
        wait_for(lambda: any("works again" in r.getMessage() for r in _records(caplog)), timeout=30)
        job = queue.enqueue("q", "after")
        wait_for(lambda: job.id in done, timeout=20)
    warnings = _records(caplog)
    outage = [r for r in warnings if "retrying" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in warnings]
    assert all(r.exc_info is None for r in warnings)
    assert "Traceback" not in caplog.text


def test_no_log_message_repeats_the_logger_name():
    """The logger is named "jexkv" and log formats print the name: a message that starts
    with "jexkv:" shows it twice."""
    offenders = []
    for path in JEXKV.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"debug", "info", "warning", "error", "exception"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("jexkv")
            ):
                offenders.append(f"{path.relative_to(JEXKV)}:{node.lineno}")
    assert offenders == []


def test_close_names_the_jobs_whose_handlers_it_gave_up_on(caplog):
    started, release = threading.Event(), threading.Event()

    def handle(job):
        started.set()
        release.wait(10)

    queue = jexkv.open_queue("memory://")
    try:
        queue.register_worker("q", handle)
        job = queue.enqueue("q", "slow")
        assert started.wait(10)
        queue.close(timeout_ms=100)
    finally:
        release.set()
    warnings = [r.getMessage() for r in _records(caplog) if "gave up on" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in _records(caplog)]
    assert "1 running jobs" in warnings[0] and f"({job.id})" in warnings[0]


def test_a_close_that_waits_for_every_handler_logs_nothing(caplog):
    with jexkv.open_queue("memory://") as queue:
        queue.register_worker("q", lambda job: None)
        queue.enqueue("q", "quick")
        assert wait_for(lambda: queue.counts("q")["waiting"] == 0)
    assert [r for r in _records(caplog) if "gave up on" in r.getMessage()] == []
