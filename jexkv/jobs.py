"""What a job is: the Job snapshot, Backoff, and the checks on enqueue arguments.

Rule: everything a caller passes to ``enqueue`` is checked here, before any
backend is touched, so a bad argument raises and nothing is enqueued. Backends
receive ``NewJob`` records that are already valid and already JSON-encoded.
A custom job id may not be one the queue makes (digits), hold ``:``, or be one
of the queue's own key names (``RESERVED_IDS``): on Redis a job's hash is
``<prefix>:<queue>:<id>``, so such an id would overwrite a key of the queue.
The rule holds on every adapter, so the contract stays one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from jexkv.codec import check_int, check_text, decode, encode
from jexkv.errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "RESERVED_IDS",
    "STATES",
    "Backoff",
    "Job",
    "NewJob",
    "is_job_id",
    "added_job",
    "job_from",
    "new_job",
    "stalled_error",
]

# The names of a queue's own keys, ``<prefix>:<queue>:<name>``: those of jexkv
# (jexkv/redis/scripts.py KEY_NAMES, the Lua scripts) and of BullMQ 6 (its QueueKeys,
# its scripts and migrations; README "The Redis queue and Node BullMQ").
RESERVED_IDS = frozenset(
    {
        "active", "completed", "de", "delay", "delayed", "dn", "events", "failed", "id",
        "limiter", "marker", "meta", "metrics", "paused", "pc", "priority", "prioritized",
        "repeat", "stalled", "stalled-check", "wait", "waiting", "waiting-children",
    }
)  # fmt: skip

# Every state a kept job can be in, in the order counts() lists them.
STATES = ("waiting", "delayed", "active", "completed", "dead")


@dataclass(frozen=True)
class Backoff:
    """How long a failed job waits before its next attempt.

    ``Backoff.fixed(ms)`` waits ``ms`` every time; ``Backoff.exponential(ms, max_ms,
    jitter)`` waits ``ms * 2**(n-1)`` before retry n (n = 1, 2, …), capped by
    ``max_ms``; with ``jitter`` j the wait is drawn uniformly from ``[w*(1-j), w]``.
    """

    kind: str
    delay_ms: int
    max_ms: int | None = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "exponential"):
            raise InvalidArgument(
                f"backoff kind must be 'fixed' or 'exponential', got {self.kind!r}"
            )
        check_int(self.delay_ms, "backoff delay_ms", 0)
        if self.max_ms is not None:
            check_int(self.max_ms, "backoff max_ms", 0)
        if type(self.jitter) not in (int, float) or not 0.0 <= self.jitter <= 1.0:
            raise InvalidArgument(
                f"backoff jitter must be a number from 0 to 1, got {self.jitter!r}"
            )

    @classmethod
    def fixed(cls, ms: int) -> Backoff:
        return cls("fixed", ms)

    @classmethod
    def exponential(cls, ms: int, max_ms: int | None = None, jitter: float = 0.0) -> Backoff:
        return cls("exponential", ms, max_ms, float(jitter))

    def delay_for(self, retry: int) -> int:
        """Milliseconds to wait before retry number ``retry`` (1 for the first retry)."""
        delay = self.delay_ms
        if self.kind == "exponential":
            delay = delay * 2 ** (retry - 1)
        if self.max_ms is not None:
            delay = min(delay, self.max_ms)
        if self.jitter:
            delay = round(delay * (1.0 - self.jitter * random.random()))
        return delay

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "delay": self.delay_ms}
        if self.max_ms is not None:
            data["max"] = self.max_ms
        if self.jitter:
            data["jitter"] = self.jitter
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Backoff | None:
        if not data:
            return None
        return cls(data["type"], data["delay"], data.get("max"), data.get("jitter", 0.0))


@dataclass(frozen=True)
class Job:
    """An immutable snapshot of a job, as it was when it was read."""

    id: str
    queue: str
    name: str
    payload: Any
    attempts: int
    attempts_made: int
    priority: int
    created_at_ms: int
    state: str
    error: str | None = None
    result: Any = None
    due_at_ms: int = 0
    traceback: str | None = None
    stall_count: int = 0
    backoff: Backoff | None = None
    processed_at_ms: int | None = None
    finished_at_ms: int | None = None
    timeout_ms: int | None = None  # the job's own bound on one attempt (None: the worker's)


_FINISHED = ("completed", "dead")


_FIELD_NAMES = frozenset(Job.__dataclass_fields__)
_object_setattr = object.__setattr__


def job_from(fields: dict[str, Any]) -> Job:
    """The Job whose fields are ``fields``: a dict of every field by name, built afresh by
    the caller, which becomes the job's own attribute dict (no copy, and none of the frozen
    dataclass's per-field ``object.__setattr__`` calls: half the cost of handing out a
    job). A dict with a field too many or too few raises TypeError; the object is the same
    as ``Job(**fields)`` would give. Every adapter builds its jobs here.

    One rule for every adapter: a job whose attempts are used up and that runs again
    (its lost runs counted as stalls, or BullMQ's ``job.retry()`` / Bull Board, which
    keep the counter) gets that one run, and is shown with ``attempts_made + 1``
    attempts while it waits or runs, so the run reads "attempt 2 of 2", never "2 of 1";
    a finished job shows at least as many attempts as it made.
    """
    if fields.keys() != _FIELD_NAMES:
        missing = sorted(_FIELD_NAMES - fields.keys())
        unknown = sorted(fields.keys() - _FIELD_NAMES)
        raise TypeError(f"job_from: missing fields {missing}, unknown fields {unknown}")
    made = fields["attempts_made"]
    if made >= fields["attempts"]:
        fields["attempts"] = made if fields["state"] in _FINISHED else made + 1
    job = object.__new__(Job)
    _object_setattr(job, "__dict__", fields)
    return job


_NO_VALUE: Any = object()
# Payloads that come back from JSON as the very value given (immutable, and equal to their
# round trip), so the Job that enqueue returns may hold them as they are.
_AS_GIVEN = frozenset({str, int, bool, float, type(None)})  # float: finite, or encode refused it


@dataclass(frozen=True)
class NewJob:
    """A checked enqueue request; ``payload`` is JSON text, ``backoff`` a dict or None."""

    name: str
    payload: str
    delay_ms: int
    attempts: int
    backoff: dict[str, Any] | None
    priority: int
    job_id: str | None
    given: Any = _NO_VALUE  # the caller's payload, when it is one of _AS_GIVEN
    timeout_ms: int | None = None

    def payload_value(self) -> Any:
        """The payload as a job shows it: the caller's own object where JSON would give
        back an equal one (no second copy of a large text), else decoded from the JSON."""
        return decode(self.payload) if self.given is _NO_VALUE else self.given


def added_job(queue: str, new: NewJob, job_id: str, state: str, due_at: int, now: int) -> Job:
    """The Job a backend just added for ``new``, built from what it wrote (no read back)."""
    return job_from(
        {
            "id": job_id,
            "queue": queue,
            "name": new.name,
            "payload": new.payload_value(),
            "attempts": new.attempts,
            "attempts_made": 0,
            "priority": new.priority,
            "created_at_ms": now,
            "state": state,
            "error": None,
            "result": None,
            "due_at_ms": due_at,
            "traceback": None,
            "stall_count": 0,
            "backoff": Backoff.from_dict(new.backoff),
            "processed_at_ms": None,
            "finished_at_ms": None,
            "timeout_ms": new.timeout_ms,
        }
    )


def check_timeout(timeout_ms: object, name: str = "timeout_ms") -> int | None:
    """A job's or a worker's ``timeout_ms``: None, or a positive int (ValueError else)."""
    if timeout_ms is None:
        return None
    if type(timeout_ms) is not int or timeout_ms <= 0:
        raise InvalidArgument(f"{name} must be a positive int (ms) or None, got {timeout_ms!r}")
    return timeout_ms


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentType(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    if not value:
        raise InvalidArgument(f"{what} must be a non-empty str")
    return check_text(value, what)


def _check_job_id(job_id: object) -> str:
    _check_name("job_id", job_id)
    assert isinstance(job_id, str)
    if job_id.isdigit():
        raise InvalidArgument(
            f"job_id {job_id!r} looks like an integer; those are the queue's own ids"
        )
    if ":" in job_id:
        raise InvalidArgument(f"job_id {job_id!r} contains ':', which job ids may not")
    if job_id in RESERVED_IDS:
        raise InvalidArgument(
            f"job_id {job_id!r} is the name of one of the queue's own keys, which job ids "
            f"may not be (reserved: {', '.join(sorted(RESERVED_IDS))})"
        )
    return job_id


def is_job_id(job_id: str) -> bool:
    """Whether a job could have the id ``job_id`` (the queue's own, a custom id
    :func:`new_job` accepts, or a schedule's job: :func:`scheduled_tick`); ValueError if it
    holds a lone surrogate."""
    check_text(job_id, "job_id")
    if ":" in job_id:
        return scheduled_tick(job_id) is not None
    return bool(job_id) and job_id not in RESERVED_IDS


def scheduled_tick(job_id: str) -> tuple[str, int] | None:
    """(schedule id, tick ms) of the job a schedule made for a tick, from its id
    ``repeat:<schedule id>:<tick ms>`` (BullMQ's job-scheduler ids); None for other jobs."""
    if not job_id.startswith("repeat:"):
        return None
    schedule_id, _, tick = job_id[7:].rpartition(":")
    if not schedule_id or not tick.isdecimal() or not tick.isascii():
        return None
    return schedule_id, int(tick)


def _check_backoff(backoff: object) -> dict[str, Any] | None:
    if backoff is None:
        return None
    if isinstance(backoff, Backoff):
        return backoff.to_dict()
    return Backoff.fixed(check_int(backoff, "backoff", 0)).to_dict()


def new_job(
    name: object,
    payload: object = None,
    *,
    delay_ms: object = 0,
    attempts: object = 1,
    backoff: None | int | Backoff = None,
    priority: object = 0,
    job_id: object = None,
    timeout_ms: object = None,
) -> NewJob:
    """Check one enqueue request; raise TypeError/ValueError/SerializationError."""
    if job_id is not None:
        _check_job_id(job_id)
    return NewJob(
        name=_check_name("job name", name),
        payload=encode(payload),
        delay_ms=check_int(delay_ms, "delay_ms", 0),
        attempts=check_int(attempts, "attempts", 1),
        backoff=_check_backoff(backoff),
        priority=check_int(priority, "priority", 0),
        job_id=job_id,  # type: ignore[arg-type]  # a str, checked above
        given=payload if type(payload) in _AS_GIVEN else _NO_VALUE,
        timeout_ms=check_timeout(timeout_ms),
    )


def stalled_error(stalls: int, max_stalls: int) -> str:
    """The error kept on a job that went dead because its lease kept running out."""
    return (
        f"Stalled: the job's lease ran out {stalls} times (its worker died or hung); "
        f"max_stalls is {max_stalls}"
    )
