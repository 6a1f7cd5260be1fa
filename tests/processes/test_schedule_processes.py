"""Schedules across processes (README, "Schedules"): four worker processes on one SQLite file
or one Redis make exactly one job per tick with no scheduler process, and miss none while
they run; when every worker was killed for two seconds, the tick that came meanwhile runs
once (one catch-up job, not a burst), then the ticks go on on the same beat."""

from __future__ import annotations

import pathlib
import time
from collections import Counter

import jexkv
from tests.processes.conftest import Backend, Spawn
from tests.processes.test_queue_processes import _kill, _records, _stop_and_join, _wait_ready

EVERY = 200
NPROCS = 4


def _ticks(folder: pathlib.Path, label: str) -> list[tuple[int, float]]:
    """(tick, start time) of every run the workers of ``label`` recorded."""
    runs = []
    for i in range(NPROCS):
        for record in _records(folder / f"ran-{label}{i}.jsonl"):
            runs.append((int(record["id"].rsplit(":", 1)[1]), record["started"]))
    return sorted(runs)


def test_four_processes_make_one_job_per_tick_and_one_catch_up_after_an_outage(
    tmp_path: pathlib.Path, backend: Backend, spawn: Spawn
) -> None:
    url = backend.created_url("sched")
    cfg = {"queue": "sched", "concurrency": 2, "options": {"lease_ms": backend.lease_ms}}
    with jexkv.open_queue(url) as q:
        first = {f"a{i}": spawn("record", url, f"a{i}", cfg) for i in range(NPROCS)}
        _wait_ready(tmp_path, first)
        q.schedule("sched", "beat", "tick", {"k": 1}, every_ms=EVERY)
        time.sleep(5)
        killed_at = time.time() * 1000
        for proc in first.values():
            _kill(proc)
        time.sleep(2)
        back_at = time.time() * 1000
        second = {f"b{i}": spawn("record", url, f"b{i}", cfg) for i in range(NPROCS)}
        _wait_ready(tmp_path, second)
        ready_at = time.time() * 1000
        time.sleep(3)
        q.unschedule("sched", "beat")
        _stop_and_join(tmp_path, second)

    before = [tick for tick, _ in _ticks(tmp_path, "a")]
    after = [tick for tick, _ in _ticks(tmp_path, "b")]
    # One job per tick. A run may repeat only for a job the kill cut short: it runs again
    # once its lease runs out (at least once), and it is a tick from before the kill.
    repeated = {tick for tick, count in Counter(before + after).items() if count > 1}
    assert all(tick <= killed_at for tick in repeated), (repeated, killed_at)
    assert len(repeated) <= 2, repeated
    # While the workers ran: every tick, on the beat.
    assert len(before) >= 20, before
    assert {b - a for a, b in zip(before, before[1:])} == {EVERY}
    # The outage: the tick whose job was made before the kill runs once when the workers are
    # back (late), none of the ticks missed meanwhile is made up, and the ticks go on on the
    # same beat. (A job claimed just before the kill runs then too: at least once.)
    late = sorted({tick for tick in after if tick < back_at})
    assert 1 <= len(late) <= 2, (late, killed_at, back_at)
    assert len([tick for tick in late if tick > killed_at]) <= 1, (late, killed_at)
    assert all(tick - before[-1] in (0, EVERY, 2 * EVERY) for tick in late), (late, before[-3:])
    rest = sorted({tick for tick in after if tick > back_at})
    assert len(rest) >= 5, rest  # 3 s of 200 ms ticks once the workers were ready
    assert {b - a for a, b in zip(rest, rest[1:])} == {EVERY}
    assert (rest[0] - late[-1]) % EVERY == 0
    assert rest[0] - ready_at < 3000  # back on the beat soon after the workers were ready
