"""Small helpers shared by the test modules."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

T = TypeVar("T")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The ``start_process`` fixture (tests/conftest.py): ``start_process(args, err=NAME, ...)``.
StartProcess = Callable[..., "subprocess.Popen[bytes]"]


def python_env(**extra: str) -> dict[str, str]:
    """The environment of a Python subprocess that imports this checkout's jexkv (and
    ``tests``): ours, with PYTHONPATH at the repo root, and ``extra`` on top."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), **extra}


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def worker_script(
    start_process: StartProcess, script: pathlib.Path, folder: pathlib.Path
) -> StartProcess:
    """``spawn(mode, url, index, cfg=None, **options)`` for a worker script of the tests
    (its arguments: ``mode url folder index cfg-as-JSON``), started by the ``start_process``
    fixture in ``folder`` (the test's tmp_path) with its stderr in folder/err-INDEX.txt;
    ``options`` (stdout=...) go to start_process."""

    def spawn(
        mode: str, url: str, index: str, cfg: dict[str, Any] | None = None, **options: Any
    ) -> subprocess.Popen[bytes]:
        args = [str(script), mode, url, str(folder), index, json.dumps(cfg or {})]
        return start_process(args, err=f"err-{index}.txt", **options)

    return spawn


def append_line(path: str, line: str) -> None:
    """Append ``line`` to the file ``path`` with one os.write on an O_APPEND descriptor: the
    line is whole in the file or absent, even when the process is killed with SIGKILL or
    several threads write (the helper processes' logs)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def wait_for_file(path: str, deadline: float) -> bool:
    """Wait until the file ``path`` exists; False once ``time.monotonic()`` passes ``deadline``."""
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def write_json(path: str, data: object) -> None:
    """Write ``data`` as JSON to ``path`` at once: a reader sees no file or all of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def ended_at_teardown(
    make: Callable[..., T], end: Callable[[T], object]
) -> Generator[Callable[..., T], None, list[T]]:
    """The body of a factory fixture, which ``yield from``s it: the test gets a factory that
    calls ``make`` and keeps what it returns; at teardown ``end`` is called on each of them,
    the last made first. What was made is the value of the ``yield from``."""
    made: list[T] = []

    def factory(*args: Any, **kwargs: Any) -> T:
        made.append(make(*args, **kwargs))
        return made[-1]

    yield factory
    for thing in reversed(made):
        end(thing)
    return made


def kill_all(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """SIGKILL every process still running, and reap them all (a test's teardown)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@contextmanager
def hold_sqlite_write_lock(path: pathlib.Path, seconds: float) -> Iterator[None]:
    """Take the write lock of the SQLite file ``path`` as another program would, and give
    it back after ``seconds`` (from a thread), whatever the block does meanwhile; the end of
    the block waits until it is given back."""
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        con.execute("ROLLBACK")
        con.close()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
