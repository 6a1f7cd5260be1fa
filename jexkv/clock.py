"""The clocks jexkv reads for expiry, delays and leases.

Rules:
* Every time stamp jexkv stores is whole milliseconds since the epoch. Stores that other
  processes share (SQLite files; Redis jobs, whose time stamps BullMQ also reads) use the
  wall clock, ``time.time()``, read here (:func:`now_ms`, :func:`due_ms`), so that several
  processes agree on what "now" is and freezegun can freeze and move it in tests.
* memory:// lives in one process, so it reads a clock that never steps
  (:func:`steady_ms`, :func:`steady_due_ms`): the wall clock as read once, moved on by
  ``time.monotonic()``. A step of the system clock (NTP setting it right, a VM resumed) then
  moves no TTL, delay or lease of a memory store (README, "Clock steps"). Where a test tool
  has replaced ``time.monotonic`` (freezegun does, and moves it with the wall clock), the
  steady clock is the wall clock, so frozen and moved time works on memory:// as before.
"""

from __future__ import annotations

import math
import time

__all__ = ["due_ms", "now_ms", "steady_due_ms", "steady_ms"]

_BUILTIN = type(time.monotonic)  # a C function; a test tool's replacement is not one


def _anchor() -> float:
    """The wall clock minus the monotonic one, read from the clocks themselves (which test
    tools leave alone), so it is right even when jexkv is imported under freezegun."""
    clock = getattr(time, "clock_gettime", None)
    if clock is not None and hasattr(time, "CLOCK_MONOTONIC"):
        return float(clock(time.CLOCK_REALTIME) - clock(time.CLOCK_MONOTONIC))
    return time.time() - time.monotonic()


_ANCHOR = _anchor()


def now_ms() -> int:
    """Milliseconds since the epoch, rounded down.

    The tiny offset absorbs float error: ``t * 1000`` for a ``t`` that is exactly
    on a millisecond (as freezegun produces) can land a hair below it, and
    rounding down would then report the previous millisecond.
    """
    return int(time.time() * 1000.0 + 0.001)


def due_ms(delay_ms: int) -> int:
    """The epoch millisecond ``delay_ms`` from now, rounded up: a delay is never cut short."""
    return math.ceil(time.time() * 1000.0 - 0.001) + delay_ms


def steady_ms() -> int:
    """Milliseconds since the epoch on a clock that never steps (see the module's rules)."""
    monotonic = time.monotonic
    if type(monotonic) is _BUILTIN:
        return int((_ANCHOR + monotonic()) * 1000.0 + 0.001)
    return int(time.time() * 1000.0 + 0.001)  # a test tool moves time: follow its wall clock


def steady_due_ms(delay_ms: int) -> int:
    """:func:`due_ms` on the steady clock."""
    monotonic = time.monotonic
    if type(monotonic) is _BUILTIN:
        return math.ceil((_ANCHOR + monotonic()) * 1000.0 - 0.001) + delay_ms
    return due_ms(delay_ms)
