"""Schedules: periodic and cron jobs, the rules every adapter shares.

Rules:
* A schedule makes one job per tick, and each job runs through the normal queue (attempts,
  backoff, dead letters). The job of a tick has the id ``repeat:<schedule id>:<tick ms>``
  (BullMQ's job-scheduler ids), so a second maker of the same tick adds nothing: at most
  one job per tick, however many processes try.
* No scheduler process: the job for the next tick is made when the current tick's job is
  claimed by a worker (in the same transaction on memory and SQLite; on Redis right after
  the claim, by the worker that claimed it, as BullMQ's workers do). Only the claim of the
  schedule's current tick makes the next one, so a job claimed again (a stalled run) or an
  old tick's job makes nothing more.
* Ticks: ``every_ms`` ticks at ``start_at_ms`` (or when the schedule is made) and every
  ``every_ms`` after; ``cron`` ticks at the expression's times in ``tz`` (jexkv/cron.py). A
  tick that came while no worker ran is made up for by the current tick's job alone (it runs
  late, once): the next tick is the first one after the claim, not the ticks missed
  meanwhile, so there is never a burst.
* A schedule ends after ``limit`` jobs, or at ``end_at_ms`` (no tick after it); it stays
  listed, with ``next_run_at_ms`` None, until it is unscheduled or replaced.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from jexkv.codec import check_int, decode, printable
from jexkv.cron import Cron
from jexkv.errors import ConfigError, InvalidArgumentType
from jexkv.jobs import Backoff, NewJob, new_job
from jexkv.jobs import scheduled_tick as tick_of

__all__ = [
    "Schedule",
    "ScheduleSpec",
    "check_schedule",
    "check_schedule_id",
    "first_tick",
    "next_tick",
    "spec_from_json",
    "spec_to_json",
    "tick_job",
    "tick_job_id",
    "tick_of",
]

_PREFIX = "repeat:"


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A schedule as it was when read: what it makes, when, and how far it got."""

    id: str
    queue: str
    name: str
    payload: Any
    cron: str | None
    every_ms: int | None
    tz: str
    start_at_ms: int | None
    end_at_ms: int | None
    limit: int | None
    attempts: int
    backoff: Backoff | None
    priority: int
    next_run_at_ms: int | None  # the tick whose job waits now; None once it has ended
    runs: int  # jobs made so far


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A checked ``schedule()`` request: what an adapter stores (payload as JSON text)."""

    id: str
    name: str
    payload: str
    cron: str | None
    every_ms: int | None
    tz: str
    start_at_ms: int | None
    end_at_ms: int | None
    limit: int | None
    attempts: int
    backoff: dict[str, Any] | None
    priority: int

    def schedule(self, queue: str, next_run_at_ms: int | None, runs: int) -> Schedule:
        backoff = None if self.backoff is None else Backoff.from_dict(self.backoff)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(queue=queue, payload=decode(self.payload), backoff=backoff)
        return Schedule(**fields, next_run_at_ms=next_run_at_ms, runs=runs)


def spec_to_json(spec: ScheduleSpec) -> str:
    """A schedule's settings as one JSON text (how SQLite stores them)."""
    return json.dumps(dataclasses.asdict(spec), separators=(",", ":"))


def spec_from_json(text: str) -> ScheduleSpec:
    return ScheduleSpec(**json.loads(text))


def check_schedule_id(schedule_id: object) -> str:
    if not isinstance(schedule_id, str):
        raise InvalidArgumentType(f"schedule_id must be a str, got {type(schedule_id).__name__}")
    if not schedule_id or ":" in schedule_id or len(schedule_id) > 200:
        raise ConfigError(
            f"schedule_id must be 1-200 characters without ':', got {printable(schedule_id)!r}"
        )
    return schedule_id


def _optional_ms(value: object, name: str) -> int | None:
    return None if value is None else check_int(value, name, 0)


def check_schedule(
    schedule_id: object,
    name: object,
    payload: object,
    *,
    cron: object,
    every_ms: object,
    tz: object,
    start_at_ms: object,
    end_at_ms: object,
    limit: object,
    attempts: object,
    backoff: None | int | Backoff,
    priority: object,
) -> ScheduleSpec:
    """Check a ``schedule()`` request before anything is written; ConfigError (or the
    enqueue checks' errors) naming what is wrong."""
    sid = check_schedule_id(schedule_id)
    if (cron is None) == (every_ms is None):
        raise ConfigError("give exactly one of cron and every_ms")
    if cron is not None:
        parsed = Cron.parse(cron, tz)  # type: ignore[arg-type]  # checked there
        expression, zone, every = parsed.expression, parsed.tz, None
    else:
        if tz is not None:
            raise ConfigError("tz goes with cron; every_ms counts milliseconds in any zone")
        if type(every_ms) is not int or every_ms <= 0:
            raise ConfigError(f"every_ms must be a positive int, got {every_ms!r}")
        expression, zone, every = None, "UTC", every_ms
    start = _optional_ms(start_at_ms, "start_at_ms")
    end = _optional_ms(end_at_ms, "end_at_ms")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"end_at_ms ({end}) must come after start_at_ms ({start})")
    if limit is not None and (type(limit) is not int or limit <= 0):
        raise ConfigError(f"limit must be a positive int or None, got {limit!r}")
    job = new_job(name, payload, attempts=attempts, backoff=backoff, priority=priority)
    return ScheduleSpec(
        id=sid,
        name=job.name,
        payload=job.payload,
        cron=expression,
        every_ms=every,
        tz=zone,
        start_at_ms=start,
        end_at_ms=end,
        limit=limit,  # an int or None, checked above
        attempts=job.attempts,
        backoff=job.backoff,
        priority=job.priority,
    )


def _within(spec: ScheduleSpec, tick: int | None, runs: int) -> int | None:
    if tick is None or (spec.end_at_ms is not None and tick > spec.end_at_ms):
        return None
    if spec.limit is not None and runs >= spec.limit:
        return None
    return tick


def first_tick(spec: ScheduleSpec, now: int) -> int | None:
    """The first tick of a new schedule (``now``: ms), None if it has none."""
    start = max(now, spec.start_at_ms or 0)
    if spec.every_ms is not None:
        return _within(spec, start, 0)
    return _within(spec, Cron(spec.cron, spec.tz).next_after(start - 1), 0)  # type: ignore[arg-type]


def next_tick(spec: ScheduleSpec, tick: int, now: int, runs: int) -> int | None:
    """The tick after ``tick``, whose job is made when ``tick``'s is claimed at ``now``,
    ``runs`` jobs made so far; ticks missed while no worker ran are skipped."""
    if spec.every_ms is not None:
        every = spec.every_ms
        following = tick + every
        if following <= now:  # missed: the next one on the same beat after now
            following = tick + ((now - tick) // every + 1) * every
        return _within(spec, following, runs)
    cron = Cron(spec.cron, spec.tz)  # type: ignore[arg-type]
    return _within(spec, cron.next_after(max(tick, now)), runs)


def tick_job_id(schedule_id: str, tick: int) -> str:
    return f"{_PREFIX}{schedule_id}:{tick}"


def tick_job(spec: ScheduleSpec, tick: int, now: int) -> NewJob:
    """The job of ``tick``: the schedule's name, payload and options, due at the tick."""
    return NewJob(
        name=spec.name,
        payload=spec.payload,
        delay_ms=max(0, tick - now),
        attempts=spec.attempts,
        backoff=spec.backoff,
        priority=spec.priority,
        job_id=tick_job_id(spec.id, tick),
    )
