"""What the clients know of Redis's commands, once for the sync and the asyncio client.

Rule: a command is sent again after a connection error only when nothing was sent, or when
it is ``SAFE`` to repeat; a ``BLOCKING`` command waits its own timeout (its last argument)
on top of the socket timeout.
"""

from __future__ import annotations

__all__ = ["BLOCKING", "FOREVER_S", "SAFE", "blocking_timeout", "command_name"]

# Commands sent again after a connection error even when the server may have run them:
# reads, and the few admin commands jexkv sends whose second run changes nothing more than
# the first (CONFIG GET/SET of one value, CLIENT ID/SETNAME/UNBLOCK, SCRIPT LOAD, COMMAND,
# INFO). A write (SET, INCR, EVALSHA …) is never repeated behind the caller's back.
SAFE = frozenset(
    "GET MGET EXISTS TTL PTTL TYPE STRLEN GETRANGE HGET HMGET HGETALL HEXISTS HLEN HKEYS HVALS"
    " LLEN LRANGE LINDEX SCARD SISMEMBER SMEMBERS ZCARD ZSCORE ZRANGE ZRANGEBYSCORE ZCOUNT"
    " ZRANK ZREVRANGE SCAN SSCAN HSCAN ZSCAN KEYS DBSIZE PING ECHO INFO TIME XLEN XRANGE"
    " XREVRANGE XINFO OBJECT MEMORY CONFIG CLIENT COMMAND SCRIPT".split()
)
# Blocking commands whose last argument is a timeout in seconds (0: forever); XREAD and
# XREADGROUP with BLOCK block too (blocking_timeout).
BLOCKING = frozenset("BLPOP BRPOP BZPOPMIN BZPOPMAX BRPOPLPUSH BLMOVE".split())
FOREVER_S = 365 * 24 * 3600.0  # "block forever", as a finite socket timeout


def command_name(arg: object) -> str:
    """A command's name (its first argument), in capitals."""
    if isinstance(arg, bytes):
        return arg.decode("ascii", "replace").upper()
    return str(arg).upper()


def blocking_timeout(name: str, args: tuple[object, ...], socket_timeout: float) -> float | None:
    """The wait for the reply of a blocking command (None: not one: the socket timeout)."""
    seconds: float | None = None
    if name in BLOCKING:
        seconds = float(args[-1])  # type: ignore[arg-type]
    elif name in _STREAM_READS:
        seconds = _block_option(args)
    if seconds is None:
        return None
    return socket_timeout + (seconds or FOREVER_S)  # the server answers within its timeout


# XREAD and XREADGROUP block when given ``BLOCK <ms>`` (0: forever) before ``STREAMS``.
_STREAM_READS = frozenset(("XREAD", "XREADGROUP"))


def _block_option(args: tuple[object, ...]) -> float | None:
    for i, arg in enumerate(args[1:-1], 1):
        word = command_name(arg)
        if word == "STREAMS":
            return None
        if word == "BLOCK":
            return float(args[i + 1]) / 1000.0  # type: ignore[arg-type]
    return None
