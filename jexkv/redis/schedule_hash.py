"""A schedule as BullMQ 6's job schedulers store it (docs/redis-layout.md), both ways.

Rules:
* ``Q:repeat:<id>`` holds ``name``, ``data`` (the payload, JSON), ``opts`` (the template of
  the jobs' options: attempts, backoff, priority, keep rules), ``pattern`` (cron) or
  ``every`` (ms, with ``offset``: the beat within it), ``tz``, ``limit``, ``startDate``,
  ``endDate`` and ``ic`` (jobs made). jexkv always writes ``tz`` for a cron schedule
  (``UTC`` by default): a Node process reads a cron without one in its own local zone.
* The job of a tick carries what a Node worker needs to make the next one itself:
  ``opts.repeat`` (pattern or every, tz, limit, dates, ``count`` and ``offset``),
  ``opts.prevMillis`` (the tick) and ``opts.repeatJobKey`` (the schedule id).
* A schedule Node made is read with the same names; a cron without ``tz`` is read as UTC.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from jexkv.codec import check_text
from jexkv.cron import Cron
from jexkv.errors import ConfigError
from jexkv.redis.job_hash import backoff_from_opts, compact_json, new_job_opts
from jexkv.resp.protocol import as_text
from jexkv.schedules import ScheduleSpec, tick_job

__all__ = [
    "beat_offset",
    "hash_fields",
    "number",
    "schedule_fields",
    "spec_from_hash",
    "template_opts",
    "tick_job_row",
]

log = logging.getLogger("jexkv")


def template_opts(spec: ScheduleSpec, keep: dict[str, Any]) -> dict[str, Any]:
    """The options every job of ``spec`` gets (the hash's ``opts``)."""
    template = dataclasses.replace(tick_job(spec, 0, 0), job_id=None, delay_ms=0)
    return dict(json.loads(new_job_opts(template, keep)))


def _repeat(spec: ScheduleSpec) -> dict[str, Any]:
    repeat: dict[str, Any] = {}
    if spec.cron is not None:
        repeat.update(pattern=spec.cron, tz=spec.tz)
    else:
        repeat["every"] = spec.every_ms
    if spec.limit is not None:
        repeat["limit"] = spec.limit
    if spec.start_at_ms is not None:
        repeat["startDate"] = spec.start_at_ms
    if spec.end_at_ms is not None:
        repeat["endDate"] = spec.end_at_ms
    return repeat


def beat_offset(spec: ScheduleSpec, tick: int | None) -> int | None:
    """An ``every`` schedule's beat within its interval (BullMQ's ``offset``), from a tick."""
    return None if spec.every_ms is None or tick is None else tick % spec.every_ms


def number(text: str | None) -> int | None:
    """A number of a hash field or a sorted-set score (``"1.7e12"`` too); None if empty."""
    return None if not text else int(float(text))


def hash_fields(reply: Any) -> dict[str, str]:
    """An HGETALL reply (a RESP3 map or a RESP2 flat list) as a dict of texts."""
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    return {as_text(name): as_text(value) for name, value in pairs}


def schedule_fields(spec: ScheduleSpec, opts: dict[str, Any], first: int | None) -> list[str]:
    """The hash of a schedule jexkv stores, flat (``ic`` is the script's)."""
    fields: dict[str, Any] = {"name": spec.name, "data": spec.payload, "opts": compact_json(opts)}
    for name, value in _repeat(spec).items():
        fields[name] = value
    offset = beat_offset(spec, first)
    if offset is not None:
        fields["offset"] = offset
    return [str(part) for pair in fields.items() for part in pair]


def tick_job_row(
    spec: ScheduleSpec, opts: dict[str, Any], tick: int, now: int, count: int, offset: int | None
) -> str:
    """The job of ``tick`` as schedule.lua and schedule_next.lua take it: JSON [name, opts,
    delay, priority]; ``count`` is its iteration (BullMQ's ``repeat.count``)."""
    job = tick_job(spec, tick, now)
    repeat = {**_repeat(spec), "count": count}
    if offset is not None:
        repeat["offset"] = offset
    job_opts = {
        **opts,
        "jobId": job.job_id,
        "delay": job.delay_ms,
        "prevMillis": tick,
        "repeatJobKey": spec.id,
        "repeat": repeat,
    }
    return compact_json([spec.name, compact_json(job_opts), job.delay_ms, spec.priority])


def spec_from_hash(
    schedule_id: str, fields: dict[str, str]
) -> tuple[ScheduleSpec, dict[str, Any]] | None:
    """The schedule a hash describes (jexkv's or Node's) and its template opts; None (logged)
    when jexkv cannot follow it (a cron expression cron.py does not read)."""
    try:
        opts = json.loads(fields.get("opts") or "{}")
        if not isinstance(opts, dict):
            opts = {}
        pattern, every = fields.get("pattern"), number(fields.get("every"))
        tz = fields.get("tz") or "UTC"
        if pattern:
            cron = Cron.parse(pattern, tz)
            pattern, tz = cron.expression, cron.tz
        backoff = backoff_from_opts(opts.get("backoff"))
        attempts = opts.get("attempts")
        priority = opts.get("priority")
        spec = ScheduleSpec(
            id=schedule_id,
            name=check_text(fields.get("name", ""), "name"),
            payload=fields.get("data") or "{}",
            cron=pattern or None,
            every_ms=None if pattern else every,
            tz=tz if pattern else "UTC",
            start_at_ms=number(fields.get("startDate")),
            end_at_ms=number(fields.get("endDate")),
            limit=number(fields.get("limit")),
            attempts=attempts if type(attempts) is int and attempts > 0 else 1,
            backoff=None if backoff is None else backoff.to_dict(),
            priority=priority if type(priority) is int and priority >= 0 else 0,
        )
    except (ConfigError, ValueError, TypeError) as exc:
        log.error("schedule %r cannot be followed by jexkv: %s", schedule_id, exc)
        return None
    if spec.cron is None and spec.every_ms is None:
        log.error(
            "schedule %r has neither a pattern nor every: jexkv cannot follow it", schedule_id
        )
        return None
    return spec, opts
