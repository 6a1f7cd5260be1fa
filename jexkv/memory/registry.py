"""Process-wide named objects for memory://NAME URLs, counted by their users.

Rule: ``memory://`` (no name, registered as ``""``) always gets a new private object;
``memory://NAME`` gets the one object of that kind and name (or name and namespace, as a
tuple) in this process, created on first use and handed to ``on_last`` (to stop its
threads) when its last user leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Callable, TypeVar

from jexkv import forks

__all__ = ["Registry"]

T = TypeVar("T")


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        forks.hold(self)
        self._objects: dict[Hashable, object] = {}
        self._users: dict[Hashable, int] = {}

    def acquire(self, name: Hashable, make: Callable[[], T]) -> T:
        if not name:
            return make()
        with self.lock:
            if name not in self._objects:
                self._objects[name] = make()
                self._users[name] = 0
            self._users[name] += 1
            return self._objects[name]  # type: ignore[return-value]

    def release(self, name: Hashable, obj: T, on_last: Callable[[T], None]) -> None:
        if name:
            with self.lock:
                if self._objects.get(name) is not obj:
                    return
                self._users[name] -= 1
                if self._users[name]:
                    return
                del self._objects[name], self._users[name]
        on_last(obj)
