"""Fixtures of the cross-process queue tests: the backend each test runs on, and worker processes.

``backend`` is parametrised over the queue adapters that several processes can share:
``sqlite`` (a file in the test's folder) and ``redis`` (database ``REDIS_DB`` of the session's
``redis_server``, flushed before each test). ``spawn`` starts ``queue_worker.py`` processes and
kills every one still running when the test ends, passed or failed.
"""

from __future__ import annotations

import pathlib
import subprocess
from dataclasses import dataclass
from typing import Callable

import pytest

import jexkv
from tests.helpers import StartProcess, worker_script

WORKER = pathlib.Path(__file__).resolve().parent / "queue_worker.py"
BACKENDS = ["sqlite", "redis"]
REDIS_DB = 10  # not the contract suites' database (9)

Spawn = Callable[..., "subprocess.Popen[bytes]"]


@dataclass(frozen=True)
class Backend:
    """Where one test's queue lives."""

    name: str
    folder: pathlib.Path
    redis_url: str | None = None
    # The lease (ms) for the crash tests. Redis finds a lost job in its workers' stalled check,
    # which runs every lease_ms and takes two rounds (mark, then recover once the lock expired):
    # a longer lease there leaves the renewals room on a busy machine.
    lease_ms: int = 500

    def url(self, label: str) -> str:
        """The queue URL for this test (``label`` names the SQLite file; Redis has one db)."""
        if self.redis_url is not None:
            return self.redis_url
        return "sqlite:///" + str(self.folder / "db" / f"{label}.db")

    def created_url(self, label: str) -> str:
        """``url(label)``, its store created first: an SQLite file exists before the worker
        processes race to create it."""
        url = self.url(label)
        with jexkv.open_queue(url) as q:
            q.counts(label)
        return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path)
    server = request.getfixturevalue("redis_server")
    url = server.url(db=REDIS_DB)
    from jexkv.resp import Redis

    with Redis.from_url(url) as client:
        client.execute_command("FLUSHDB")
    return Backend("redis", tmp_path, redis_url=url, lease_ms=1000)


@pytest.fixture
def spawn(start_process: StartProcess, tmp_path: pathlib.Path) -> Spawn:
    """Start queue_worker.py processes; every one still running at the end is killed."""
    return worker_script(start_process, WORKER, tmp_path)
