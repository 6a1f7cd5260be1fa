"""Background load for the cluster and sentinel tests: a thread calling a step function
over and over, counting the rounds that succeeded and keeping what was raised."""

from __future__ import annotations

import threading
import time
from typing import Callable

from tests.helpers import wait_for

JOIN_TIMEOUT = 60.0  # seconds: a step may wait out the client's timeouts and retries


class Load:
    """``step(n)`` for n = 0, 1, 2, ... on a daemon thread until ``stop()``.

    An exception of a class in ``allowed`` is kept in ``allowed_errors`` (the test
    counts them), any other one in ``errors`` (the test fails on them); either way the
    thread waits ``pause`` seconds and goes on with the next round. ``interval``: seconds
    to wait after each round that succeeded (0: none, as fast as it goes).
    """

    def __init__(
        self,
        name: str,
        step: Callable[[int], None],
        *,
        allowed: tuple[type[BaseException], ...] = (),
        pause: float = 0.02,
        interval: float = 0.0,
    ) -> None:
        self.name = name
        self.step = step
        self.allowed = allowed
        self.pause = pause
        self.interval = interval
        self.rounds = 0  # rounds that returned without raising
        self.errors: list[BaseException] = []
        self.allowed_errors: list[tuple[float, BaseException]] = []  # (monotonic time, error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{name}", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self.step(n)
            except self.allowed as exc:
                self.allowed_errors.append((time.monotonic(), exc))
                self._stop.wait(self.pause)
            except BaseException as exc:  # kept for the test, never an unhandled thread error
                self.errors.append(exc)
                self._stop.wait(self.pause)
            else:
                self.rounds += 1
                if self.interval:
                    self._stop.wait(self.interval)
            n += 1

    def wait_rounds(self, more: int, timeout: float = 30.0) -> bool:
        """Wait until ``more`` further rounds succeeded; False when they did not in time."""
        target = self.rounds + more
        return wait_for(lambda: self.rounds >= target, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT)
        assert not self._thread.is_alive(), f"the {self.name} load did not stop"

    def describe_errors(self) -> str:
        shown = "; ".join(f"{type(e).__name__}: {e}" for e in self.errors[:5])
        return f"{len(self.errors)} unexpected errors in the {self.name} load: {shown}"
