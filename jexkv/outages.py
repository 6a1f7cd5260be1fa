"""What a worker logs when its backend fails: one line per outage, not one per retry.

Rule: while the backend keeps failing (a Redis server down, a SQLite file locked), the
worker threads retry every half second; logging each try would bury everything else.
So a ``BackendError`` logs one warning when an outage starts and one line when the
backend works again, with how long it lasted and how many tries failed. Any other
exception is a bug somewhere: its traceback is logged, at most once a minute per queue
(with the number of repeats left out), so it is seen without flooding the log.
"""

from __future__ import annotations

import logging
import threading
import time

from jexkv.errors import BackendError

__all__ = ["OutageLog"]

_BUG_EVERY_S = 60.0  # the longest a repeating unexpected error stays silent


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class OutageLog:
    """Failures of one queue's backend steps, from any of its threads."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log, self._what = log, what
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the outage, if one runs
        self._failures = 0
        self._last_bug = -_BUG_EVERY_S
        self._bugs_unlogged = 0

    def failed(self, exc: BaseException, doing: str) -> None:
        """A backend step (``doing``, e.g. "fetching jobs") raised ``exc``."""
        if isinstance(exc, BackendError):
            with self._lock:
                self._failures += 1
                starts = self._since is None
                if starts:
                    self._since = time.monotonic()
            if starts:
                self._log.warning(
                    "%s: %s failed: %s; retrying (the next line says when it works again)",
                    self._what,
                    doing,
                    _one_line(exc),
                )
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_bug < _BUG_EVERY_S:
                self._bugs_unlogged += 1
                return
            self._last_bug, repeats, self._bugs_unlogged = now, self._bugs_unlogged, 0
        more = f" ({repeats} more unexpected errors since the last one logged)" if repeats else ""
        self._log.error("%s: %s failed unexpectedly; going on%s", self._what, doing, more,
                        exc_info=exc)  # fmt: skip

    def ok(self) -> None:
        """A backend step worked: ends an outage, if one runs (a cheap check when none)."""
        if self._since is None:
            return
        with self._lock:
            since, failures = self._since, self._failures
            self._since, self._failures = None, 0
        if since is not None:
            self._log.warning(
                "%s: the backend works again after %.1f s (%d failed tries)",
                self._what,
                time.monotonic() - since,
                failures,
            )
