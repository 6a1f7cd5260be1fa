"""Wake-ups for the idle workers of one queue backend, queue by queue.

Rule: each queue has a generation, bumped whenever work may have come (a local enqueue,
a retry, a resume, or the backend's one watcher seeing another process's commit or a
Redis marker). A worker reads the generation *before* it looks for work, and waits only
while the generation is unchanged, so a wake-up between its look and its wait is never
lost, and a wake-up of one queue wakes only that queue's workers, not a thousand others.
"""

from __future__ import annotations

import threading
from typing import Callable

from jexkv import forks

__all__ = ["Wakeups"]


class _Queue:
    __slots__ = ("cond", "gen", "waiting")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.gen = 0
        self.waiting = 0  # threads in wait()


class Wakeups:
    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # per thread: the (queue, generation, next due) seen
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

    def bump(self, queue: str) -> None:
        """Work may have come to ``queue``: wake its waiting workers."""
        slot = self._queue(queue)
        with slot.cond:
            slot.gen += 1
            slot.cond.notify_all()

    def wait(self, queue: str, seen: int, timeout_s: float, stop: threading.Event) -> None:
        """Wait up to ``timeout_s`` while the generation of ``queue`` is still ``seen``."""
        slot = self._queue(queue)
        with slot.cond:
            if slot.gen != seen or stop.is_set() or timeout_s <= 0:
                return
            slot.waiting += 1
            first = slot.waiting == 1
        try:
            if first and self.on_first_waiter is not None:
                self.on_first_waiter(queue)  # outside the lock: it takes the watchers' own
            with slot.cond:
                if slot.gen == seen and not stop.is_set():
                    slot.cond.wait(timeout_s)
        finally:
            with slot.cond:
                slot.waiting -= 1

    def found_nothing(self, queue: str, seen: int, next_due_ms: int | None) -> None:
        """This thread looked at ``queue`` (after reading generation ``seen``) and found no
        job ready; its next delayed job is due at ``next_due_ms`` (None: none, or paused)."""
        self._local.seen = (queue, seen, next_due_ms)

    def idle(self, queue: str, timeout_s: float, stop: threading.Event, now_ms: int) -> None:
        """An idle worker's wait: until ``queue`` is woken, its next delayed job (as this
        thread last found nothing) is due, ``stop`` is set or ``timeout_s`` passed."""
        looked, seen, due = getattr(self._local, "seen", (None, 0, None))
        if looked != queue:
            return  # this thread has not looked at this queue yet: let it look
        if due is not None:
            timeout_s = min(timeout_s, max(0.0, (due - now_ms) / 1000.0))
        self.wait(queue, seen, timeout_s, stop)

    def queues(self) -> list[str]:
        """Every queue that was ever waited on or woken here."""
        return list(self._queues)

    def waiting(self, queue: str) -> int:
        """How many threads wait on ``queue`` now."""
        slot = self._queues.get(queue)
        return 0 if slot is None else slot.waiting
