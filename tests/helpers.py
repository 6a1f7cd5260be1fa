"""Small helpers shared by the test modules."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from typing import Any, Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def kill_all(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """SIGKILL every process still running, and reap them all (a test's teardown)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
