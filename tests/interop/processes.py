"""Child processes that print JSON lines: the Node scripts and the jexkv worker script.

``Side`` runs the scripts of tests/interop/node against one Redis URL, queue and prefix
(passed in the environment; ``NODE_PATH`` points at the cached node_modules). ``run()``
waits for a script to finish and returns its JSON lines; ``start()`` returns a ``Child``
whose lines a thread collects, so a test can wait for one with a deadline, then SIGTERM
or SIGKILL the process. Every child a ``Side`` started is stopped at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tests.interop.npm_cache import NODE_DIR

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 30.0
WAIT_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

Line = dict[str, Any]


class Child:
    """A running process whose stdout JSON lines are collected in ``lines``."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self.lines: list[Line] = []
        self._changed = threading.Condition()
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"unparsed": raw.decode(errors="replace")}
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]

    def describe(self) -> str:
        return (
            f"{' '.join(self.command[-2:])} (exit {self.process.poll()})\n"
            f"stdout lines: {self.lines}\nstderr: {self.stderr()}"
        )

    def matching(self, predicate: Callable[[Line], object]) -> list[Line]:
        with self._changed:
            return [line for line in self.lines if predicate(line)]

    def wait_for(
        self,
        predicate: Callable[[Line], object],
        count: int = 1,
        timeout: float = WAIT_TIMEOUT,
    ) -> list[Line]:
        """The first ``count`` lines matching ``predicate``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if predicate(line)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    break
                self._changed.wait(min(left, 0.2))
        raise AssertionError(f"no {count} matching line(s) in {timeout} s: {self.describe()}")

    def wait_event(self, event: str, count: int = 1, timeout: float = WAIT_TIMEOUT) -> list[Line]:
        """The first ``count`` lines ``{"event": event, ...}``."""
        return self.wait_for(lambda line: line.get("event") == event, count, timeout)

    def events(self, event: str) -> list[Line]:
        """The lines ``{"event": event, ...}`` so far."""
        return self.matching(lambda line: line.get("event") == event)

    def wait_ready(self) -> None:
        self.wait_for(lambda line: line.get("ready"))

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)

    def close(self) -> None:
        self.terminate()
        self._stderr.close()


class Side:
    """Runs the Node scripts (and the jexkv worker script) on one queue."""

    def __init__(self, node_modules: Path, redis_url: str, queue: str, prefix: str) -> None:
        self.node = shutil.which("node") or "node"
        self.redis_url = redis_url
        self.queue = queue
        self.prefix = prefix
        self.env = dict(os.environ)
        self.env.update(
            NODE_PATH=str(node_modules),
            JEXKV_INTEROP_REDIS_URL=redis_url,
            JEXKV_INTEROP_QUEUE=queue,
            JEXKV_INTEROP_PREFIX=prefix,
        )
        self.children: list[Child] = []

    def _node_command(self, script: str, args: tuple) -> list[str]:
        return [self.node, str(NODE_DIR / script), *(str(a) for a in args)]

    def run(self, script: str, *args: object, timeout: float = RUN_TIMEOUT) -> list[Line]:
        """Run a Node script to its end; its JSON lines (fails on a non-zero exit)."""
        command = self._node_command(script, args)
        done = subprocess.run(
            command, cwd=NODE_DIR, env=self.env, capture_output=True, timeout=timeout
        )
        assert done.returncode == 0, (
            f"{script} exited {done.returncode}\nstdout: {done.stdout.decode(errors='replace')}"
            f"\nstderr: {done.stderr.decode(errors='replace')[-3000:]}"
        )
        return [json.loads(raw) for raw in done.stdout.splitlines() if raw.strip()]

    def start(self, script: str, *args: object, **env: object) -> Child:
        """Start a long-running Node script (worker.js, events.js) with extra env."""
        return self._start(self._node_command(script, args), NODE_DIR, env)

    def start_jexkv_worker(self, **options: object) -> Child:
        """Start tests/interop/jexkv_worker.py in its own Python process."""
        command = [sys.executable, "-m", "tests.interop.jexkv_worker", self.redis_url, self.queue]
        command.append(json.dumps({"prefix": self.prefix, **options}))
        return self._start(command, REPO, {})

    def _start(self, command: list[str], cwd: Path, env: dict[str, object]) -> Child:
        child = Child(command, {**self.env, **{k: str(v) for k, v in env.items()}}, cwd)
        self.children.append(child)
        return child

    def add(self, *jobs: dict) -> list[str]:
        """Node ``Queue.add`` of each job ({name, data, opts}); the ids BullMQ gave them."""
        return [line["added"] for line in self.run("add.js", json.dumps(list(jobs)))]

    def inspect(self, *ids: str) -> tuple[dict, dict[str, Any]]:
        """Node's ``getJobCounts()`` and a snapshot of each job (None when missing)."""
        lines = self.run("inspect.js", *ids)
        return lines[0]["counts"], {line["id"]: line["job"] for line in lines[1:]}

    def close(self) -> None:
        for child in reversed(self.children):
            child.close()
