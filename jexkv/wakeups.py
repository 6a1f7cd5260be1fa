"""Wake-ups for the idle workers of one queue backend, queue by queue, threads and tasks.

Rules:
* Each queue has a generation, bumped whenever work may have come (a local enqueue, a
  retry, a resume, or the backend's one watcher seeing another process's commit or a Redis
  marker). A worker reads the generation (``seen``) *before* it looks for work and waits
  only while it is unchanged, so a wake-up between its look and its wait is never lost,
  and a wake-up of one queue wakes only that queue's workers, not a thousand others.
* A look that found nothing records when the queue's next delayed job is due
  (``found_nothing``): a waiter wakes then at the latest.
* Waiters are threads (``wait``) or asyncio tasks of any loop (``wait_async``); a bump from
  any thread wakes both. ``bump(queue, one=True)`` (one job became ready) wakes one waiter,
  a plain bump every one.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, Callable

from jexkv import forks

__all__ = ["Wakeups"]


class _Queue:
    __slots__ = ("cond", "futures", "gen", "next_due", "threads")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.gen = 0
        self.next_due: int | None = None  # ms: the next delayed job, as last found
        self.threads = 0  # threads in wait()
        self.futures: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]
        self.futures = collections.deque()  # tasks in wait_async(), oldest first

    @property
    def waiting(self) -> int:
        return self.threads + len(self.futures)


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


class Wakeups:
    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        # Called (with the queue) when a queue gets its first waiting worker: Redis's
        # watchers then block on that queue's marker too (redis/markers.py).
        self.on_first_waiter: Callable[[str], None] | None = None
        forks.reset(self)

    def _after_fork_in_child(self) -> None:
        # Conditions held by threads that did not follow: new ones. Workers do not follow a
        # fork either; the child's own start from generation 0.
        self._queues = {}
        self._lock = threading.Lock()

    def _queue(self, queue: str) -> _Queue:
        found = self._queues.get(queue)
        if found is None:
            with self._lock:
                found = self._queues.setdefault(queue, _Queue())
        return found

    def seen(self, queue: str) -> int:
        """The generation of ``queue``; read it before looking for work."""
        return self._queue(queue).gen

    def found_nothing(self, queue: str, next_due_ms: int | None) -> None:
        """A look at ``queue`` found no job ready; its next delayed job is due at
        ``next_due_ms`` (None: none, or the queue is paused)."""
        self._queue(queue).next_due = next_due_ms

    def bump(self, queue: str, one: bool = False) -> None:
        """Work may have come to ``queue``: wake its waiting workers (``one``: one of them,
        for one job made ready)."""
        slot = self._queue(queue)
        slot.gen += 1
        if not slot.threads and not slot.futures:
            # No one waits: nothing to wake (a waiter counts itself, under the lock, before
            # it checks the generation again, so it sees this bump).
            return
        with slot.cond:
            if one and slot.threads:
                slot.cond.notify()
                return
            slot.cond.notify_all()
            if not slot.futures:
                return
            if one:
                woken = [slot.futures.popleft()]
            else:
                woken, slot.futures = list(slot.futures), collections.deque()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, future in woken:
            if loop is running:
                _resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def _timeout(self, slot: _Queue, timeout_s: float, now_ms: int) -> float:
        due = slot.next_due
        if due is not None:
            return min(timeout_s, max(0.0, (due - now_ms) / 1000.0))
        return timeout_s

    def wait(
        self, queue: str, seen: int, timeout_s: float, stop: threading.Event, now_ms: int
    ) -> None:
        """A thread's wait: until ``queue`` is bumped past ``seen``, its next delayed job is
        due, ``stop`` is set or ``timeout_s`` passed."""
        slot = self._queue(queue)
        timeout_s = self._timeout(slot, timeout_s, now_ms)
        with slot.cond:
            if slot.gen != seen or stop.is_set() or timeout_s <= 0:
                return
            slot.threads += 1
            first = slot.waiting == 1
        try:
            if first and self.on_first_waiter is not None:
                self.on_first_waiter(queue)  # outside the lock: it takes the watchers' own
            with slot.cond:
                if slot.gen == seen and not stop.is_set():
                    slot.cond.wait(timeout_s)
        finally:
            with slot.cond:
                slot.threads -= 1

    async def wait_async(self, queue: str, seen: int, timeout_s: float, now_ms: int) -> None:
        """A task's wait: until ``queue`` is bumped past ``seen``, its next delayed job is
        due, or ``timeout_s`` passed (the engine bumps the queue to stop its waiters)."""
        slot = self._queue(queue)
        timeout_s = self._timeout(slot, timeout_s, now_ms)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with slot.cond:
            if slot.gen != seen or timeout_s <= 0:
                return
            slot.futures.append((loop, future))
            first = slot.waiting == 1
        if first and self.on_first_waiter is not None:
            self.on_first_waiter(queue)
        timer = loop.call_later(timeout_s, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            with slot.cond:
                try:
                    slot.futures.remove((loop, future))
                except ValueError:
                    pass  # woken: taken off by bump()

    def queues(self) -> list[str]:
        """Every queue that was ever waited on or woken here."""
        return list(self._queues)

    def waiting(self, queue: str) -> int:
        """How many threads and tasks wait on ``queue`` now."""
        slot = self._queues.get(queue)
        return 0 if slot is None else slot.waiting
