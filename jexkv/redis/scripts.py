"""The queue's Lua scripts, loaded from the package files in ``jexkv/redis/lua``.

Rule: every script is ``lib.lua`` (the shared functions) followed by the script's own file, and
every script takes the queue's fourteen keys (``queue_keys``) in the same order, with the job
key prefix and the caller's clock as its first two arguments; BullMQ's layout
(BULLMQ-LAYOUT.md) is all they share with BullMQ.
"""

from __future__ import annotations

from importlib import resources

from jexkv.resp import Redis, Script

__all__ = ["NAMES", "KEY_NAMES", "load_scripts", "queue_keys"]

NAMES = (
    "add",
    "fetch",
    "complete",
    "fail",
    "extend",
    "release",
    "stalled",
    "get",
    "counts",
    "list",
    "retry_dead",
    "purge_dead",
    "pause",
)
# The queue's keys, in the order lib.lua unpacks them.
KEY_NAMES = (
    "wait", "active", "prioritized", "pc", "delayed", "completed", "failed", "stalled",
    "stalled-check", "id", "meta", "events", "marker", "limiter",
)  # fmt: skip

_sources: dict[str, str] = {}


def _source(name: str) -> str:
    if name not in _sources:
        _sources[name] = resources.files("jexkv.redis").joinpath(f"lua/{name}.lua").read_text()
    return _sources[name]


def load_scripts(client: Redis) -> dict[str, Script]:
    """Every queue script, bound to ``client`` (sent to the server on first use)."""
    lib = _source("lib")
    return {name: client.register_script(lib + "\n" + _source(name)) for name in NAMES}


def queue_keys(base: str) -> list[str]:
    """The fourteen keys of the queue whose keys start with ``base`` (``<prefix>:<queue>``)."""
    return [f"{base}:{name}" for name in KEY_NAMES]
