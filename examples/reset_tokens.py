"""One-time password-reset tokens with a TTL and an atomic ``pop``.

Shows: a token stored with a 15-minute ``ttl_ms`` and its remaining TTL; redeeming it with
``pop`` (the second redeem fails); a token whose short TTL ran out being refused; and several
threads, lined up on a Barrier, racing to redeem one token: exactly one wins. The store is a
SQLite file in a temporary folder, removed at the end.

Run it from the repository root, installed or not: ``python examples/reset_tokens.py``
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

try:
    import jexkv
except ImportError:  # run from a clone, not installed: use the checkout's jexkv
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import jexkv

FIFTEEN_MINUTES_MS = 15 * 60 * 1000


def issue(kv: jexkv.KVStore, user_id: int, ttl_ms: int = FIFTEEN_MINUTES_MS) -> str:
    token = secrets.token_urlsafe(16)
    kv.set(f"reset:{token}", {"user_id": user_id}, ttl_ms=ttl_ms)
    return token


def redeem(kv: jexkv.KVStore, token: str) -> Any:
    """The user id the token was issued for, or None if it is expired or already used."""
    claim = kv.pop(f"reset:{token}")
    return None if claim is None else claim["user_id"]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = "sqlite:///" + os.path.join(folder, "tokens.db")
        with jexkv.open_kv(url) as kv:
            token = issue(kv, user_id=42)
            ttl_s = kv.ttl_ms(f"reset:{token}") / 1000
            print(f"issued reset token {token[:8]}... for user 42; ttl: {ttl_s:.1f} s")

            first = redeem(kv, token)
            print(f"first redeem:  user {first}")
            second = redeem(kv, token)
            print(f"second redeem: {second} (a token works once)")
            assert (first, second) == (42, None)

            short = issue(kv, user_id=7, ttl_ms=200)
            print(f"issued token {short[:8]}... with a 200 ms ttl; waiting 300 ms")
            time.sleep(0.3)
            late = redeem(kv, short)
            print(f"redeem after expiry: {late} (expired tokens are refused)")
            assert late is None

            racers = 8
            contested = issue(kv, user_id=99)
            barrier = threading.Barrier(racers)
            results: list[Any] = [None] * racers

            def racer(n: int) -> None:
                barrier.wait()
                results[n] = redeem(kv, contested)

            threads = [threading.Thread(target=racer, args=(n,)) for n in range(racers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [n for n, r in enumerate(results) if r is not None]
            print(f"{racers} threads redeemed token {contested[:8]}... at once: winners {winners}")
            assert len(winners) == 1 and results[winners[0]] == 99
            print("exactly one redeem won")


if __name__ == "__main__":
    main()
