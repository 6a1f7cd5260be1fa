"""The one clock jexkv reads for expiry, delays and leases.

Rule: every time stamp jexkv stores is whole milliseconds since the epoch from
``time.time()``, read here, so that freezegun can freeze and move it in tests and
so that several processes sharing a SQLite file agree on what "now" is.
"""

from __future__ import annotations

import math
import time


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
