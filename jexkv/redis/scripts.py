"""The queue's Lua scripts, loaded from the package files in ``jexkv/redis/lua``.

Rule: every queue script is the part of ``lib.lua`` it uses followed by the script's own file,
and every one takes the queue's fourteen keys (``queue_keys``) in the same order, with the job
key prefix, the caller's clock and ``BATCH`` as its first three arguments (each file's header
says the rest); BullMQ's layout (docs/redis-layout.md) is all they share with BullMQ. The KV
store's scripts (``kv_*.lua``) stand alone.
"""

from __future__ import annotations

import re
from importlib import resources

from jexkv.resp.surface import RedisClient, ScriptLike

__all__ = [
    "BATCH",
    "build_all",
    "KEY_NAMES",
    "KV_NAMES",
    "NAMES",
    "kv_script",
    "load_scripts",
    "queue_keys",
    "source",
]

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
    "schedule",
    "schedule_next",
    "unschedule",
    "schedules",
)
KV_NAMES = ("kv_incr", "kv_set_many")
# How many jobs a step that moves many (promoting due delayed jobs, retrying or purging dead
# ones) moves per call: it bounds how long one script holds the server.
BATCH = 1000
# The queue's keys, in the order lib.lua unpacks them.
KEY_NAMES = (
    "wait", "active", "prioritized", "pc", "delayed", "completed", "failed", "stalled",
    "stalled-check", "id", "meta", "events", "marker", "limiter",
)  # fmt: skip

_sources: dict[str, str] = {}
_FUNCTION = re.compile(r"^local function (\w+)\(", re.MULTILINE)


def _source(name: str) -> str:
    if name not in _sources:
        _sources[name] = resources.files("jexkv.redis").joinpath(f"lua/{name}.lua").read_text()
    return _sources[name]


def _split(lib: str) -> tuple[str, list[tuple[str, str]]]:
    """lib.lua as its preamble and its (name, text) functions, in file order."""
    starts = [(m.start(), m.group(1)) for m in _FUNCTION.finditer(lib)]
    ends = [start for start, _ in starts[1:]] + [len(lib)]
    return lib[: starts[0][0]], [(name, lib[a:b]) for (a, name), b in zip(starts, ends)]


def build(body: str, lib: str) -> str:
    """``body`` with the preamble of ``lib`` and only the lib functions it calls (and those
    call), in lib's order: Redis runs a script's top level on every call, so each function
    defined and never used would cost every call its closure."""
    preamble, functions = _split(lib)
    needed: set[str] = set()
    text = body
    changed = True
    while changed:
        changed = False
        for name, chunk in functions:
            if name not in needed and re.search(rf"\b{name}\(", text):
                needed.add(name)
                text += chunk
                changed = True
    kept = "".join(chunk for name, chunk in functions if name in needed)
    return preamble + kept + "\n" + body


def source(name: str) -> str:
    """The text of the KV store's script ``name`` (one of KV_NAMES)."""
    return _source(name)


def kv_script(client: RedisClient, name: str) -> ScriptLike:
    """The KV store's script ``name`` (one of KV_NAMES), bound to ``client``."""
    return client.register_script(_source(name))


def build_all() -> dict[str, str]:
    """The text of every queue script, each with the lib functions it calls."""
    lib = _source("lib")
    return {name: build(_source(name), lib) for name in NAMES}


def load_scripts(client: RedisClient) -> dict[str, ScriptLike]:
    """Every queue script, bound to ``client`` (sent to the server on first use)."""
    return {name: client.register_script(text) for name, text in build_all().items()}


def queue_keys(base: str) -> list[str]:
    """The fourteen keys of the queue whose keys start with ``base`` (``<prefix>:<queue>``)."""
    return [f"{base}:{name}" for name in KEY_NAMES]
