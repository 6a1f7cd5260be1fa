"""MarkerWatch: the few threads of a Redis queue store that wait for work for every queue.

Rules:
* Idle workers never poll Redis and hold no connection: they wait on their queue's
  wake-ups (jexkv/wakeups.py). A producer (jexkv or BullMQ) adds to the queue's marker; a
  watcher thread, blocked on the markers of the queues whose workers wait
  (``BZPOPMIN`` over many keys at once), pops it and wakes that queue alone.
* The first ``DEDICATED`` queues of a store get a watcher of their own, on a connection named
  as BullMQ names a worker's (``<prefix>:<base64(queue)>``), so Node's ``getWorkers()`` lists
  them; later queues share one watcher per cluster slot (README, "Many queues"). A thousand
  idle queues cost about ten connections, not a thousand.
* A watcher blocks only on the markers of queues that have a waiting worker now, and a marker
  it pops for a queue whose workers all went busy meanwhile is put back, so that an idle
  worker of another process (jexkv or Node) gets it: the marker is never taken from one who
  could run the job. A queue that gains its first waiting worker interrupts its watcher's
  blocked command (``CLIENT UNBLOCK``), which blocks again with that marker too.
* What the server refuses (ACLs) is learnt once and logged once: without ``BZPOPMIN``
  watchers wake their queues every ``POLL_S`` instead; without ``CLIENT`` a watcher's block
  lasts at most ``POLL_S``, so a queue's first wait is seen within that time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from jexkv.errors import BackendError
from jexkv.outages import OutageLog
from jexkv.resp.blocking import Blocker
from jexkv.resp.surface import RedisClient
from jexkv.wakeups import Wakeups

__all__ = ["DEDICATED", "MarkerWatch"]

log = logging.getLogger("jexkv")

DEDICATED = 8  # queues per store with a watcher (and connection) of their own
POLL_S = 0.05  # the wake-up period where the server refuses BZPOPMIN, the block where CLIENT
_BLOCK_S = 5.0  # the longest a watcher blocks before it looks at its queues again
_SLACK_S = 0.25  # how late past its timeout the server may answer a blocking command
_INTERRUPT_S = 0.1  # how long a queue's first waiter tries to end its watcher's wait
_ERROR_PAUSE_S = 0.5


class _Watcher:
    """One thread blocking on the markers of some queues, on a connection of its own."""

    def __init__(self, owner: MarkerWatch, name: str, shared: bool = False) -> None:
        self.owner = owner
        self.name = name
        self.shared = shared
        self.markers: dict[str, str] = {}  # marker key -> queue
        self.blocked_on: frozenset[str] = frozenset()  # the keys of the running wait
        self.blocker = owner.client.blocker(client_name=name)
        self.thread = threading.Thread(target=self._run, name="jexkv-markers", daemon=True)

    def _keys(self) -> list[str]:
        """The markers of this watcher's queues that have a waiting worker (cond held)."""
        waiting = self.owner.wakeups.waiting
        return [marker for marker, queue in self.markers.items() if waiting(queue)]

    def _run(self) -> None:
        owner = self.owner
        while not owner.stopping:
            with owner.cond:
                keys = self._keys()
                if not keys:
                    owner.cond.wait(_BLOCK_S)
                    continue
                self.blocked_on = frozenset(keys)
            if not self.blocker.can_block:  # BZPOPMIN refused: wake the waiting queues at times
                owner.stop_event.wait(POLL_S)
                for key in keys:
                    owner.wakeups.bump(self.markers[key])
                continue
            try:
                popped = self.blocker.bzpopmin(
                    keys, _BLOCK_S if self.blocker.can_interrupt else POLL_S
                )
                owner.outage.ok()
            except Exception as exc:
                owner.outage.failed(exc, "waiting for jobs")
                owner.stop_event.wait(_ERROR_PAUSE_S)
                continue
            finally:
                with owner.cond:
                    self.blocked_on = frozenset()
            owner.learnt(self.blocker)
            if popped is not None:
                self._woken(*popped)

    def end_wait(self, blocked: frozenset[str]) -> None:
        """End the wait on ``blocked`` (the keys it was about to block on, or blocks on now),
        so the watcher blocks again with today's markers. The wait may not have reached the
        server yet: tried again for a few ms until it has, or the watcher moved on."""
        deadline = time.monotonic() + _INTERRUPT_S
        while self.blocked_on is blocked and self.blocker.can_interrupt:
            if self.blocker.interrupt() or time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def _woken(self, key: str, member: Any, score: Any) -> None:
        queue = self.markers.get(key)
        if queue is not None and self.owner.wakeups.waiting(queue):
            self.owner.wakeups.bump(queue)
            return
        # Every worker of that queue went busy: the marker belongs to whoever is idle.
        try:
            self.owner.client.execute_command("ZADD", key, score, member)
        except BackendError as exc:
            self.owner.outage.failed(exc, "handing back a queue's marker")


class MarkerWatch:
    """The watchers of one Redis queue store (one backend object)."""

    def __init__(self, client: RedisClient, wakeups: Wakeups) -> None:
        self.client = client
        self.wakeups = wakeups
        self.outage = OutageLog(log, repr(client))  # one warning per outage
        wakeups.on_first_waiter = self._first_waiter
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition()
        self.stop_event = threading.Event()
        self.stopping = False
        self._pid = os.getpid()
        self._queues: dict[str, _Watcher] = {}  # queue -> its watcher
        self._watchers: list[_Watcher] = []
        self._dedicated = 0
        self._told: set[str] = set()

    def watch(self, queue: str, marker: str, name: str) -> None:
        """Wake ``queue`` when its ``marker`` gets work; ``name``: the connection name a
        watcher of this queue alone takes (BullMQ's worker name)."""
        if queue in self._queues and self._pid == os.getpid():
            return
        with self.cond:
            if self._pid != os.getpid():
                self._reset()  # a forked child: the parent's threads did not follow
            if self.stopping or queue in self._queues:
                return
            watcher = None
            if self._dedicated < DEDICATED:
                self._dedicated += 1
                watcher = _Watcher(self, name)
            else:
                for shared in self._watchers:
                    if shared.shared and self._one_slot(shared, marker):
                        watcher = shared
                        break
                if watcher is None:
                    name = f"jexkv:idle:{socket.gethostname()}:{os.getpid()}"
                    watcher = _Watcher(self, name, shared=True)
            watcher.markers[marker] = queue
            self._queues[queue] = watcher
            if watcher not in self._watchers:
                self._watchers.append(watcher)
                watcher.thread.start()

    def _one_slot(self, watcher: _Watcher, marker: str) -> bool:
        first = next(iter(watcher.markers))
        return len(self.client.slot_groups([first, marker])) == 1

    def _first_waiter(self, queue: str) -> None:
        """``queue`` got a waiting worker: its watcher must block on its marker too."""
        watcher = self._queues.get(queue)
        if watcher is None:
            return
        with self.cond:
            self.cond.notify_all()  # a watcher with nothing to block on looks again
            blocked = watcher.blocked_on
        marker = next((m for m, q in watcher.markers.items() if q == queue), None)
        if blocked and marker not in blocked:
            watcher.end_wait(blocked)

    def learnt(self, blocker: Blocker) -> None:
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

    def close(self) -> None:
        """Stop every watcher (from the process that started them)."""
        with self.cond:
            self.stopping = True
            self.stop_event.set()
            self.cond.notify_all()
            watchers = list(self._watchers) if self._pid == os.getpid() else []
        deadline = time.monotonic() + _BLOCK_S + _SLACK_S
        for watcher in watchers:
            # Interrupted again until it ends: a wait sent just after an interrupt would
            # otherwise hold close() for its whole length.
            while watcher.thread.is_alive() and watcher.thread is not threading.current_thread():
                if time.monotonic() > deadline:
                    break
                watcher.blocker.interrupt()
                watcher.thread.join(0.02)
            watcher.blocker.close()
