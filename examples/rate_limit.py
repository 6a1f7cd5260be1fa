"""A fixed-window rate limit with ``incr(key, ttl_ms=window)``.

The first request of a window creates the counter with a TTL of one window; later requests
only add to it (``incr`` applies ``ttl_ms`` only when it creates the key). Once the counter
is past the limit, requests are refused until the key expires and a new window begins. The
window here is 300 ms so the example finishes quickly.

Run it from the repository root, installed or not: ``python examples/rate_limit.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import jexkv
except ImportError:  # run from a clone, not installed: use the checkout's jexkv
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import jexkv

LIMIT = 5  # requests per window
WINDOW_MS = 300


def allow(kv: jexkv.KVStore, client: str) -> tuple[bool, int]:
    """(allowed, hits in the current window) for one request of ``client``."""
    hits = kv.incr(f"rate:login:{client}", ttl_ms=WINDOW_MS)
    return hits <= LIMIT, hits


def burst(kv: jexkv.KVStore, client: str, n: int) -> list[bool]:
    answers = []
    for i in range(n):
        ok, hits = allow(kv, client)
        print(f"  request {i + 1}: hit {hits} of {LIMIT} -> {'allowed' if ok else 'REFUSED'}")
        answers.append(ok)
    return answers


def main() -> None:
    with jexkv.open_kv("memory://") as kv:
        client = "203.0.113.9"
        print(f"limit: {LIMIT} requests per {WINDOW_MS} ms window")
        print("window 1, 8 requests at once:")
        first = burst(kv, client, 8)
        assert first == [True] * LIMIT + [False] * 3, first
        left = kv.ttl_ms(f"rate:login:{client}")
        print(f"window ends in {left} ms; waiting for it")
        time.sleep(max(left, 0) / 1000 + 0.05)
        print("window 2, 3 requests:")
        second = burst(kv, client, 3)
        assert second == [True] * 3, second
        print("allowed again in the next window")


if __name__ == "__main__":
    main()
