"""When the Redis clients send a command again, and how long they wait first: the rules the
sync and the asyncio clients (plain, Cluster, Sentinel) share. Each is a small object or function
that decides; the caller sleeps (``time.sleep`` or ``asyncio.sleep``) and sends.
"""

from __future__ import annotations

import random
import time
from typing import Any

from jexkv.resp.commands import SAFE
from jexkv.resp.protocol import ErrorReply

__all__ = ["Backoff", "Loading", "Resend", "may_resend"]

LOADING_POLL_S = 0.05


def may_resend(sent: bool, name: str) -> bool:
    """After a connection error, a command may go again when it was never written, or when
    repeating it cannot change the result (``commands.SAFE``)."""
    return not sent or name in SAFE


class Resend:
    """The resends of one call after connection errors: ``retries`` at most, each after an
    exponential backoff with full jitter (10 ms, 20 ms, 40 ms, … at most 1 s), and none that
    would start past ``bound_s`` from the call's start (connect_timeout + the reply's
    timeout). A timeout is never resent: the caller raises it at once."""

    __slots__ = ("_attempt", "_deadline", "_name", "_retries")

    def __init__(self, name: str, retries: int, bound_s: float) -> None:
        self._name = name
        self._retries = retries
        self._attempt = 0
        self._deadline = time.monotonic() + bound_s

    def pause(self, sent: bool) -> float | None:
        """How long to wait before sending again, or None: raise the error."""
        if not may_resend(sent, self._name) or self._attempt >= self._retries:
            return None
        self._attempt += 1
        pause = random.uniform(0, min(1.0, 0.01 * 2**self._attempt))
        return None if time.monotonic() + pause >= self._deadline else pause


class Loading:
    """A restarted server loading its data answers ``LOADING`` and did not run the command:
    it is sent again every 50 ms, up to ``socket_timeout`` from the first such answer."""

    __slots__ = ("_until", "_window")

    def __init__(self, window_s: float) -> None:
        self._window = window_s
        self._until: float | None = None

    def pause(self, reply: Any) -> float | None:
        """How long to wait before sending again, or None: raise ``reply``."""
        if not isinstance(reply, ErrorReply) or reply.code != "LOADING":
            return None
        now = time.monotonic()
        if self._until is None:
            self._until = now + self._window
        return LOADING_POLL_S if now < self._until else None


class Backoff:
    """Pauses that double (with jitter) from ``first_s`` up to ``cap_s``, for at most
    ``window_s`` from the start: ``next()`` is the next pause, or None once it would end past
    the window (the caller raises what it caught)."""

    __slots__ = ("_cap", "_deadline", "_pause")

    def __init__(self, window_s: float, first_s: float, cap_s: float) -> None:
        self._deadline = time.monotonic() + window_s
        self._pause = first_s
        self._cap = cap_s

    @property
    def expired(self) -> bool:
        return time.monotonic() > self._deadline

    def next(self) -> float | None:
        pause = self._pause
        if time.monotonic() + pause > self._deadline:
            return None
        self._pause = min(pause * 2, self._cap)
        return random.uniform(pause / 2, pause)
