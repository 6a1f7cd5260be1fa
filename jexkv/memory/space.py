"""The storage behind memory:// stores: a dict, an expiry heap and a purge thread.

Rule: ``data`` maps a full key to ``(frozen value, expires_at_ms or None)`` and is
only changed under ``lock``; plain reads look it up without the lock (a dict
lookup is atomic) and filter expired entries themselves. The heap holds
``(expires_at_ms, key)`` for every TTL ever written; entries whose key was since
rewritten or deleted are stale and skipped (lazy deletion), and the heap is
rebuilt from ``data`` when stale entries outnumber live ones.

A named space (``memory://NAME``, one per namespace) is shared by every store opened on
that name and namespace in this process, and freed when the last of them closes.
"""

from __future__ import annotations

import heapq
import logging
import threading
from typing import Any, Optional

from jexkv import forks
from jexkv.clock import steady_ms
from jexkv.memory.registry import Registry

__all__ = ["MemorySpace", "acquire", "release"]

log = logging.getLogger("jexkv")

Entry = tuple[Any, Optional[int]]


class MemorySpace:
    def __init__(self, purge_interval_ms: int) -> None:
        self.data: dict[str, Entry] = {}
        self.heap: list[tuple[int, str]] = []
        self.heap_limit = 64
        self.lock = threading.Lock()
        self.purge_interval_ms = purge_interval_ms
        self.purge_thread: threading.Thread | None = None
        self._stop = threading.Event()
        forks.hold(self)
        forks.reset(self)

    def _after_fork_in_child(self) -> None:
        self.purge_thread = None  # it did not follow: the next TTL write starts one

    def note_expiry(self) -> None:
        """After a TTL write pushed to ``heap`` past ``heap_limit`` or with no purge
        thread yet: compact the heap, start the thread. Call with ``lock`` held."""
        if len(self.heap) > self.heap_limit:
            self.heap = [(e, k) for k, (_, e) in self.data.items() if e is not None]
            heapq.heapify(self.heap)
            # Stale entries may again grow to the number of live ones before the
            # next rebuild: O(n) work once per O(n) writes, memory within 2x.
            self.heap_limit = 2 * len(self.heap) + 64
        if self.purge_thread is None:
            self._start_purge()

    def _start_purge(self) -> None:
        if self._stop.is_set():
            return
        self.purge_thread = threading.Thread(
            target=self._purge_loop, name="jexkv-purge", daemon=True
        )
        self.purge_thread.start()

    def purge_once(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired keys; how many were deleted.

        Small batches under the lock keep writers from waiting behind a big purge.
        """
        removed = 0
        now = steady_ms()
        with self.lock:
            heap, data = self.heap, self.data
            while heap and heap[0][0] <= now and removed < limit:
                expires_at, key = heapq.heappop(heap)
                entry = data.get(key)
                if entry is not None and entry[1] == expires_at:
                    del data[key]
                    removed += 1
        return removed

    def _purge_loop(self) -> None:
        interval = self.purge_interval_ms / 1000.0
        while not self._stop.wait(interval):
            try:
                while self.purge_once() == 1000 and not self._stop.is_set():
                    pass
            except Exception:  # never let the purge thread die silently
                log.exception("memory purge failed")

    def stop(self) -> None:
        self._stop.set()
        thread = self.purge_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


_spaces = Registry()


def acquire(name: str, namespace: str, purge_interval_ms: int) -> MemorySpace:
    """The space for ``name`` and ``namespace`` (name "": a new private one), counting one
    more user."""
    return _spaces.acquire(
        (name, namespace) if name else "", lambda: MemorySpace(purge_interval_ms)
    )


def release(name: str, namespace: str, space: MemorySpace) -> None:
    """One user fewer; the last one stops the purge thread and frees a named space."""
    _spaces.release((name, namespace) if name else "", space, MemorySpace.stop)
