"""What a forked child must not inherit: locks held by threads that did not follow it.

Rule: ``os.fork()`` copies only the thread that called it, so a lock another thread held
at that moment would stay held in the child forever. Two ways out, one per kind of lock:

* ``hold(obj, *names)``: the locks ``obj.<name>`` (default ``lock``) are taken before
  the fork and given back after it, in the parent and in the child, so the child's copy
  is never caught half-way through an update (memory spaces), nor half-way through a
  SQLite write (whose locks a child's own connections would then wait on forever).
* ``reset(obj)``: ``obj._after_fork_in_child()`` runs in the child, to set anew locks that
  may be held for long (a SQLite writer waiting out busy_timeout_ms) and to forget
  threads that did not follow.

Objects are referenced weakly: registering never keeps one alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["hold", "reset"]

_held: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
_reset: weakref.WeakSet[Any] = weakref.WeakSet()
_taken: list[Any] = []  # the locks the forking thread holds
_guard = threading.Lock()  # guards the sets; held by the forking thread across the fork


def hold(obj: Any, *names: str) -> None:
    """Take the locks ``obj.<name>`` across every fork, in this order."""
    with _guard:
        _held[obj] = names or ("lock",)


def reset(obj: Any) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child."""
    with _guard:
        _reset.add(obj)


def _before() -> None:
    _guard.acquire()
    for obj, names in list(_held.items()):
        for name in names:
            lock = getattr(obj, name)
            lock.acquire()
            _taken.append(lock)


def _give_back() -> None:
    while _taken:
        _taken.pop().release()
    _guard.release()


def _after_in_child() -> None:
    _give_back()
    for obj in list(_reset):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_give_back, after_in_child=_after_in_child)
