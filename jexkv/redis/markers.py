"""The few watchers of a Redis queue store that wait for work for every queue.

Rules:
* Idle workers never poll Redis and hold no connection: they wait on their queue's
  wake-ups (jexkv/wakeups.py). A producer (jexkv or BullMQ) adds to the queue's marker; a
  watcher, blocked on the markers of the queues whose workers wait (``BZPOPMIN`` over many
  keys at once), pops it and wakes that queue alone.
* The first ``DEDICATED`` queues of a store get a watcher of their own, on a connection named
  as BullMQ names a worker's (``<prefix>:<base64(queue)>``), so Node's ``getWorkers()`` lists
  them; later queues share one watcher per cluster slot (README, "Many queues"). A thousand
  idle queues cost about ten connections, not a thousand.
* A watcher blocks only on the markers of queues that have a waiting worker now, and a marker
  it pops for a queue whose workers all went busy meanwhile is put back, so that an idle
  worker of another process (jexkv or Node) gets it: the marker is never taken from one who
  could run the job. A queue that gains its first waiting worker ends its watcher's blocked
  command (``CLIENT UNBLOCK``), which blocks again with that marker too.
* What the server refuses (ACLs) is learnt once and logged once: without ``BZPOPMIN``
  watchers wake their queues every ``POLL_S`` instead; without ``CLIENT`` a watcher's block
  lasts at most ``POLL_S``, so a queue's first wait is seen within that time.
* What a watcher does is :func:`watcher_steps`, written once; ``MarkerWatch`` runs it in
  threads over the sync client's ``Blocker``, ``AsyncMarkerWatch`` in tasks over the asyncio
  client's ``AsyncBlocker``.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Generator
from typing import Any

from jexkv.errors import BackendError
from jexkv.outages import OutageLog
from jexkv.programs import drive, drive_async
from jexkv.wakeups import Wakeups

__all__ = ["DEDICATED", "POLL_S", "AsyncMarkerWatch", "MarkerWatch"]

log = logging.getLogger("jexkv")

DEDICATED = 8  # queues per store with a watcher (and connection) of their own
POLL_S = 0.05  # the wake-up period where the server refuses BZPOPMIN, the block where CLIENT
_BLOCK_S = 5.0  # the longest a watcher blocks before it looks at its queues again
_SLACK_S = 0.25  # how late past its timeout the server may answer a blocking command
_INTERRUPT_S = 0.1  # how long a queue's first waiter tries to end its watcher's wait
_ERROR_PAUSE_S = 0.5

# The steps of a watcher's program, and what its driver sends back.
IDLE = 0  # (IDLE, seconds): until a queue of its gets a waiter, the stop, or the time
BLOCK = 1  # (BLOCK, keys, seconds) -> (key, member, score) or None
PAUSE = 2  # (PAUSE, seconds)
ZADD = 3  # (ZADD, key, score, member): a marker handed back


class _Watcher:
    """One program blocking on the markers of some queues, on a connection of its own."""

    def __init__(self, owner: _Watch, name: str, shared: bool) -> None:
        self.owner = owner
        self.name = name
        self.shared = shared
        self.markers: dict[str, str] = {}  # marker key -> queue
        self.blocked_on: frozenset[str] = frozenset()  # the keys of the running wait
        self.blocker: Any = owner.client.blocker(client_name=name)
        self.runner: Any = None  # its thread or task


def watcher_steps(watcher: _Watcher) -> Generator[tuple[Any, ...], Any, None]:
    """A watcher's life: block on the markers of its waiting queues, wake the queue whose
    marker it pops (or hand the marker back), until the store closes."""
    owner, blocker = watcher.owner, watcher.blocker
    waiting = owner.wakeups.waiting
    while not owner.stopping:
        keys = [marker for marker, queue in list(watcher.markers.items()) if waiting(queue)]
        if not keys:
            yield (IDLE, _BLOCK_S)
            continue
        watcher.blocked_on = frozenset(keys)
        if not blocker.can_block:  # BZPOPMIN refused: wake the waiting queues at times
            watcher.blocked_on = frozenset()
            yield (PAUSE, POLL_S)
            for key in keys:
                owner.wakeups.bump(watcher.markers[key])
            continue
        try:
            # Where CLIENT is refused no one can end the wait early: short waits then.
            popped = yield (BLOCK, keys, _BLOCK_S if blocker.can_interrupt else POLL_S)
            owner.outage.ok()
        except Exception as exc:
            owner.outage.failed(exc, "waiting for jobs")
            yield (PAUSE, _ERROR_PAUSE_S)
            continue
        finally:
            watcher.blocked_on = frozenset()
        owner.learnt(blocker)
        if popped is None:
            continue
        key, member, score = popped
        queue = watcher.markers.get(key)
        if queue is not None and waiting(queue):
            owner.wakeups.bump(queue)
            continue
        # Every worker of that queue went busy: the marker belongs to whoever is idle.
        try:
            yield (ZADD, key, score, member)
        except BackendError as exc:
            owner.outage.failed(exc, "handing back a queue's marker")


class _Watch(abc.ABC):
    """The watchers of one Redis queue store: which queue each watches, and what the
    server refused; the driver (threads or tasks) is the subclass's."""

    def __init__(self, client: Any, wakeups: Wakeups) -> None:
        self.client = client
        self.wakeups = wakeups
        self.outage = OutageLog(log, repr(client))  # one warning per outage
        wakeups.on_first_waiter = self._first_waiter
        self._reset()

    def _reset(self) -> None:
        self.stopping = False
        self._pid = os.getpid()
        self._queues: dict[str, _Watcher] = {}  # queue -> its watcher
        self._watchers: list[_Watcher] = []
        self._dedicated = 0
        self._told: set[str] = set()
        self._lock = threading.Lock()  # threads of a sync store call watch() at once

    def watch(self, queue: str, marker: str, name: str) -> None:
        """Wake ``queue`` when its ``marker`` gets work; ``name``: the connection name a
        watcher of this queue alone takes (BullMQ's worker name)."""
        if queue in self._queues and self._pid == os.getpid():
            return
        if self._pid != os.getpid():
            self._forked()
        with self._lock:
            if self.stopping or queue in self._queues:
                return
            watcher = None
            if self._dedicated < DEDICATED:
                self._dedicated += 1
                watcher = _Watcher(self, name, shared=False)
            else:
                for shared in self._watchers:
                    if shared.shared and self._one_slot(shared, marker):
                        watcher = shared
                        break
                if watcher is None:
                    host = f"jexkv:idle:{socket.gethostname()}:{os.getpid()}"
                    watcher = _Watcher(self, host, shared=True)
            watcher.markers[marker] = queue
            self._queues[queue] = watcher
            started = watcher in self._watchers
            if not started:
                self._watchers.append(watcher)
        if not started:
            self._start(watcher)

    def _forked(self) -> None:
        self._reset()  # a forked child: the parent's threads did not follow

    def _one_slot(self, watcher: _Watcher, marker: str) -> bool:
        first = next(iter(watcher.markers))
        return len(self.client.slot_groups([first, marker])) == 1

    def _first_waiter(self, queue: str) -> None:
        """``queue`` got a waiting worker: its watcher must block on its marker too."""
        watcher = self._queues.get(queue)
        if watcher is None:
            return
        self._wake_idle()
        blocked = watcher.blocked_on
        marker = next((m for m, q in watcher.markers.items() if q == queue), None)
        if blocked and marker not in blocked:
            self._end_wait(watcher, blocked)

    def learnt(self, blocker: Any) -> None:
        """Say once, per store, what the server refused this user (ACLs) and what then."""
        for command, allowed, instead in (
            ("BZPOPMIN", blocker.can_block, f"idle workers look at their queues every "
             f"{POLL_S * 1000:.0f} ms"),
            ("CLIENT", blocker.can_interrupt, f"a queue's first idle worker is seen within "
             f"{POLL_S * 1000:.0f} ms"),
        ):  # fmt: skip
            if not allowed and command not in self._told:
                self._told.add(command)
                log.warning("the Redis user of %r may not run %s (ACL); %s", self.client,
                            command, instead)  # fmt: skip

    # The driver's part.

    @abc.abstractmethod
    def _start(self, watcher: _Watcher) -> None:
        """Run ``watcher``'s program: in a thread, or as a task."""

    @abc.abstractmethod
    def _wake_idle(self) -> None:
        """Wake the watchers that have nothing to block on, so they look again."""

    @abc.abstractmethod
    def _end_wait(self, watcher: _Watcher, blocked: frozenset[str]) -> None:
        """End ``watcher``'s blocking wait on ``blocked``, so it blocks again on today's markers."""


class MarkerWatch(_Watch):
    """The watchers as threads, over the sync client's blocking connections."""

    def _reset(self) -> None:
        super()._reset()
        self.cond = threading.Condition()
        self.stop_event = threading.Event()

    def _start(self, watcher: _Watcher) -> None:
        watcher.runner = threading.Thread(
            target=self._drive, args=(watcher,), name="jexkv-markers", daemon=True
        )
        watcher.runner.start()

    def _drive(self, watcher: _Watcher) -> None:
        drive(watcher_steps(watcher), functools.partial(self._step, watcher))

    def _step(self, watcher: _Watcher, step: tuple[Any, ...]) -> Any:
        if step[0] == BLOCK:
            return watcher.blocker.bzpopmin(step[1], step[2])
        if step[0] == IDLE:
            with self.cond:
                if not self.stopping:
                    self.cond.wait(step[1])
        elif step[0] == PAUSE:
            self.stop_event.wait(step[1])
        else:
            self.client.execute_command("ZADD", *step[1:])
        return None

    def _wake_idle(self) -> None:
        with self.cond:
            self.cond.notify_all()  # a watcher with nothing to block on looks again

    def _end_wait(self, watcher: _Watcher, blocked: frozenset[str]) -> None:
        """End the wait on ``blocked``, so the watcher blocks again with today's markers. The
        wait may not have reached the server yet: tried again for a few ms until it has."""
        deadline = time.monotonic() + _INTERRUPT_S
        while watcher.blocked_on is blocked and watcher.blocker.can_interrupt:
            if watcher.blocker.interrupt() or time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def close(self) -> None:
        """Stop every watcher (from the process that started them)."""
        with self.cond:
            self.stopping = True
            self.stop_event.set()
            self.cond.notify_all()
        watchers = list(self._watchers) if self._pid == os.getpid() else []
        deadline = time.monotonic() + _BLOCK_S + _SLACK_S
        for watcher in watchers:
            thread = watcher.runner
            # Interrupted again until it ends: a wait sent just after an interrupt would
            # otherwise hold close() for its whole length.
            while thread.is_alive() and thread is not threading.current_thread():
                if time.monotonic() > deadline:
                    break
                watcher.blocker.interrupt()
                thread.join(0.02)
            watcher.blocker.close()


class AsyncMarkerWatch(_Watch):
    """The watchers as tasks of one loop, over the asyncio client's blocking connections."""

    def _reset(self) -> None:
        super()._reset()
        self._idle = asyncio.Event()

    def _start(self, watcher: _Watcher) -> None:
        watcher.runner = asyncio.ensure_future(self._drive(watcher))

    async def _drive(self, watcher: _Watcher) -> None:
        try:
            await drive_async(watcher_steps(watcher), functools.partial(self._step, watcher))
        except asyncio.CancelledError:
            watcher.blocker.close()
            raise

    async def _step(self, watcher: _Watcher, step: tuple[Any, ...]) -> Any:
        if step[0] == BLOCK:
            return await watcher.blocker.bzpopmin(step[1], step[2])
        if step[0] == IDLE:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), step[1])
            except asyncio.TimeoutError:
                pass
        elif step[0] == PAUSE:
            await asyncio.sleep(step[1])
        else:
            await self.client.execute_command("ZADD", *step[1:])
        return None

    def _wake_idle(self) -> None:
        self._idle.set()

    def _end_wait(self, watcher: _Watcher, blocked: frozenset[str]) -> None:
        async def end() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _INTERRUPT_S
            while watcher.blocked_on is blocked and watcher.blocker.can_interrupt:
                if await watcher.blocker.interrupt() or loop.time() > deadline:
                    return
                await asyncio.sleep(0.002)

        asyncio.ensure_future(end())

    async def aclose(self) -> None:
        """Stop every watcher."""
        self.stopping = True
        self._idle.set()
        tasks = [w.runner for w in self._watchers if w.runner is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watcher in self._watchers:
            watcher.blocker.close()
