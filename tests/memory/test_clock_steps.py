"""memory:// reads a clock that never steps (README, "Clock steps").

A step of the system clock is played by replacing ``time.time`` with one an hour ahead (or
behind), as NTP setting the clock or a resumed VM would move it; ``time.monotonic`` goes on
as it does through a real step. freezegun, which replaces both, still moves memory's time
(the frozen_clock tests of tests/contract).
"""

from __future__ import annotations

import threading
import time

import pytest

import jexkv

HOUR_S = 3600.0


def _step(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


@pytest.mark.parametrize("step", [HOUR_S, -HOUR_S], ids=["forward", "back"])
def test_a_clock_step_moves_no_ttl(monkeypatch: pytest.MonkeyPatch, step: float) -> None:
    with jexkv.open_kv("memory://") as kv:
        kv.set("token", "t", ttl_ms=60_000)
        kv.set("short", "s", ttl_ms=300)
        _step(monkeypatch, step)
        assert kv.get("token") == "t"
        assert 59_000 < kv.ttl_ms("token") <= 60_000
        assert kv.get("short") == "s"
        time.sleep(0.4)
        assert kv.get("short") is None  # still expires on time
        kv.set("after", 1, ttl_ms=60_000)
        assert 59_000 < kv.ttl_ms("after") <= 60_000


@pytest.mark.parametrize("step", [HOUR_S, -HOUR_S], ids=["forward", "back"])
def test_a_clock_step_moves_no_delay(monkeypatch: pytest.MonkeyPatch, step: float) -> None:
    ran: list[float] = []
    done = threading.Event()
    with jexkv.open_queue("memory://") as q:
        q.register_worker("q", lambda job: (ran.append(time.monotonic()), done.set()))
        start = time.monotonic()
        q.enqueue("q", "later", delay_ms=600)
        _step(monkeypatch, step)
        assert q.counts("q")["delayed"] == 1
        assert done.wait(10)
        assert 0.55 <= ran[0] - start < 5.0  # neither an hour early nor an hour late


def test_a_forward_step_takes_no_lease_from_a_running_job(monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def handle(job: jexkv.Job) -> None:
        runs.append(job.id)
        started.set()
        release.wait(10)

    with jexkv.open_queue("memory://", lease_ms=400) as q:
        q.register_worker("q", handle, concurrency=2)
        job = q.enqueue("q", "long")
        assert started.wait(10)
        _step(monkeypatch, HOUR_S)
        time.sleep(1.0)  # two stalled checks would have run by now
        assert q.counts("q")["active"] == 1
        release.set()
        q.close(timeout_ms=5000)
        assert runs == [job.id]
