"""ProcessHandler: a worker's handler run in child processes (``processes=True``).

Rules:
* Each worker slot (a thread of the parent, or a thread of ``jexkv.aio``'s slot) owns one
  child process, ``python -m jexkv.child`` (jexkv/child.py), started with ``subprocess``
  (fork and exec at once: safe in a parent whose threads hold locks) and given two pipes.
  The parent keeps the leases, retries and the store; a child never opens the store. A job
  goes to the child as JSON, its result (or error, with the child's traceback) comes back
  as JSON.
* The child imports the handler by its module and name, so the handler must be a
  top-level function of an importable module: a lambda, a closure, a local object's method
  or a function of the script being run (``__main__``) is refused at ``register_worker``
  with ConfigError.
* An attempt past its timeout kills its child (SIGKILL), which is replaced; the attempt
  fails with JobTimeout. A child that dies (a signal, ``os._exit``, the OOM killer, a
  MemoryError it reported) fails the attempt at once with WorkerCrashed naming the exit
  code or signal; the next job gets a new child. ``max_jobs_per_process`` replaces a child
  after that many jobs. A child whose parent died exits within half a second, so a killed
  worker leaves no orphans (its jobs are recovered as stalled, like any dead worker's).
* ``close`` asks each child to stop after its job, then kills what is left at the timeout.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable

from jexkv.child import OUT_OF_MEMORY
from jexkv.codec import decode
from jexkv.engine import timed_out
from jexkv.errors import ConfigError, SerializationError, Unrecoverable, WorkerCrashed
from jexkv.jobs import Job

__all__ = ["ProcessHandler", "check_importable"]

log = logging.getLogger("jexkv")

_STOP = b""  # asks a child to exit
_BOOT = (
    "import json, os, sys; sys.path[:0] = json.loads(os.environ.pop('JEXKV_CHILD_PATH'));"
    " from jexkv.child import main; main(sys.argv[1:])"
)


def check_importable(handler: Callable[..., Any]) -> tuple[str, str]:
    """(module, qualname) of ``handler``; ConfigError unless a child process can import it
    by them."""
    name = getattr(handler, "__qualname__", None)
    module = getattr(handler, "__module__", None)
    shown = f"{module}.{name}" if module and name else repr(handler)
    if not isinstance(name, str) or not isinstance(module, str):
        raise ConfigError(
            f"processes=True needs a function a child process can import by module and "
            f"name; {shown} is none"
        )
    if "<lambda>" in name or "<locals>" in name:
        raise ConfigError(
            f"processes=True needs a handler a child process can import by module and name; "
            f"{shown} is a lambda or is defined inside a function: define it at the top "
            "level of a module"
        )
    if module == "__main__":
        raise ConfigError(
            f"processes=True needs a handler a child process can import; {name} lives in the "
            "script being run (__main__): move it to a module and import it from there"
        )
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"processes=True: cannot import the handler {shown}: {exc}") from None
    if found is not handler:
        raise ConfigError(
            f"processes=True needs a handler a child process can import by module and name; "
            f"{shown} names another object there"
        )
    return module, name


# -- in the parent -----------------------------------------------------------------------


class RemoteError(Exception):
    """A handler's exception in a child process; its class is named after the original's,
    so the job's error reads ``"ValueError: ..."`` as in a thread."""

    remote_traceback: str = ""


_remote_types: dict[str, type[RemoteError]] = {}


def _remote(kind: str, message: str, tb: str) -> BaseException:
    exc: Exception
    if kind == "Unrecoverable":
        exc = Unrecoverable(message)
    elif kind == "SerializationError":
        exc = SerializationError(message)
    else:
        cls = _remote_types.get(kind)
        if cls is None:
            cls = _remote_types[kind] = type(kind, (RemoteError,), {})
        exc = cls(message)
    vars(exc)["remote_traceback"] = tb  # the engine keeps it as the job's traceback
    return exc


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"it was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"it was killed by signal {-code}"
    if code == OUT_OF_MEMORY:
        return "it ran out of memory"
    return f"it exited with code {code}"


def _job_json(job: Job) -> bytes:
    fields = dict(vars(job))
    fields["backoff"] = None if job.backoff is None else job.backoff.to_dict()
    return json.dumps(fields).encode()


class _Child:
    def __init__(self, ref: tuple[str, str], label: str) -> None:
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        # The parent's sys.path first: the child imports the same jexkv and handler module.
        env = {**os.environ, "JEXKV_CHILD_PATH": json.dumps(sys.path)}
        command = [sys.executable, "-c", _BOOT, *ref, str(os.getpid()),
                   str(from_parent), str(to_parent)]  # fmt: skip
        try:
            self.process = subprocess.Popen(command, pass_fds=(from_parent, to_parent), env=env)
        finally:
            os.close(from_parent)
            os.close(to_parent)
        self.requests = Connection(to_child, readable=False)
        self.replies = Connection(from_child, writable=False)
        self.label = label
        self.jobs = 0

    def run(self, job: Job, timeout_s: float | None) -> Any:
        self.jobs += 1
        try:
            self.requests.send_bytes(_job_json(job))
            answered = self.replies.poll(timeout_s)
            reply = self.replies.recv_bytes() if answered else b""
        except (EOFError, OSError):
            raise self._crashed(job, "") from None
        if not answered:
            self.kill()
            raise timed_out(job, timeout_s or 0.0)
        if reply[:2] == b"ok":
            return decode(reply[2:].decode())
        kind, message, tb = json.loads(reply[2:])
        if kind == "MemoryError":
            raise self._crashed(job, f": {kind}: {message}")
        raise _remote(kind, message, tb)

    def _crashed(self, job: Job, detail: str) -> WorkerCrashed:
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        return WorkerCrashed(
            f"the worker process running job {job.id} died: {_how_it_ended(code)}{detail}"
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        try:
            self.requests.send_bytes(_STOP)
        except OSError:
            pass  # gone already

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.requests.close()
        self.replies.close()


def _wait(child: _Child, timeout_s: float | None) -> None:
    try:
        child.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass  # killed next


class ProcessHandler:
    """``handler`` in child processes, one per calling thread; a plain callable for the
    engine's drivers (``call_with_timeout`` bounds an attempt by killing its child)."""

    def __init__(
        self, handler: Callable[[Job], Any], queue: str, max_jobs: int | None = None
    ) -> None:
        self.ref = check_importable(handler)
        self.handler = handler
        self.queue = queue
        self.max_jobs = max_jobs
        self._local = threading.local()
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        self.__name__ = getattr(handler, "__name__", "handler")

    def _child(self) -> _Child:
        child: _Child | None = getattr(self._local, "child", None)
        if child is not None and child.alive:
            return child
        if child is not None:
            child.kill()
        with self._lock:
            if self._closed:
                raise WorkerCrashed("the worker is closing: no new worker process is started")
            child = _Child(self.ref, f"jexkv-process-{self.queue}")
            self._children = [c for c in self._children if c.alive]
            self._children.append(child)
        self._local.child = child
        return child

    def call_with_timeout(self, job: Job, timeout_s: float | None) -> Any:
        child = self._child()
        try:
            return child.run(job, timeout_s)
        finally:
            if not child.alive or (self.max_jobs is not None and child.jobs >= self.max_jobs):
                child.stop()
                _wait(child, 5)
                child.kill()
                self._local.child = None

    def __call__(self, job: Job) -> Any:
        return self.call_with_timeout(job, None)

    def pids(self) -> list[int]:
        """The pids of the children alive now."""
        with self._lock:
            return [c.process.pid for c in self._children if c.alive]

    def close(self, timeout_s: float | None) -> None:
        """Ask every child to stop after its job; kill what is left at ``timeout_s``."""
        with self._lock:
            self._closed = True
            children, self._children = self._children, []
        for child in children:
            child.stop()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for child in children:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            _wait(child, left)
            child.kill()
