"""A BullMQ job hash -> jexkv.Job.

Rule: only here do BullMQ's field names meet jexkv's. A hash comes from a script as a flat
list of bytes (``HGETALL``), a claim as one JSON array (``claimed_job``); fields a Node BullMQ
producer writes differently (a numeric backoff, a custom backoff type, missing fields) are
read as BullMQ reads them. A job BullMQ retried after its last attempt (atm kept) is shown
with ``attempts_made + 1`` attempts while it waits or runs (``jobs.job_from``).
"""

from __future__ import annotations

import json
from typing import Any

from jexkv.codec import decode
from jexkv.jobs import Backoff, Job, NewJob, job_from

__all__ = [
    "backoff_from_opts",
    "claimed_job",
    "compact_json",
    "finished_from_event",
    "hash_to_job",
    "keep_opts",
    "new_job_opts",
]


def backoff_from_opts(spec: Any) -> Backoff | None:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"type": "fixed", "delay": int(spec)}
    if not isinstance(spec, dict):
        return None
    try:
        return Backoff.from_dict(
            {**spec, "delay": int(spec.get("delay") or 0), "jitter": float(spec.get("jitter", 0))}
        )
    except (KeyError, TypeError, ValueError):
        return None  # a custom strategy of a Node worker: jexkv retries at once


def hash_to_job(queue: str, job_id: str, flat: list[bytes], state: str) -> Job:
    """The Job snapshot of one job hash (``flat`` as HGETALL gives it) in ``state``."""
    it = iter(flat)
    fields: dict[str, Any] = {}
    for key, value in zip(it, it):
        name = key.decode()
        # The payload stays bytes for codec.decode, which reads a large one in chunks.
        fields[name] = value if name == "data" else value.decode()
    return _job(queue, job_id, fields, state)


# The fields of a claim, in the order lib.lua's CLAIM_FIELDS packs them (then the id).
_CLAIM_FIELDS = ("name", "data", "opts", "timestamp", "delay", "priority", "atm", "ats", "stc",
                 "failedReason", "stacktrace")  # fmt: skip


def claimed_job(queue: str, packed: bytes, now: int) -> Job:
    """The Job of one claim that fetch packed as a JSON array (missing fields are false)."""
    values = decode(packed)  # a large claim is read in chunks too
    fields = {name: value for name, value in zip(_CLAIM_FIELDS, values) if value is not False}
    fields["processedOn"] = now
    return _job(queue, values[-1], fields, "active")


def _number(fields: dict[str, Any], name: str) -> int:
    value = fields.get(name)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _job(queue: str, job_id: str, fields: dict[str, Any], state: str) -> Job:
    try:
        opts = json.loads(fields.get("opts") or "{}")
    except ValueError:
        opts = {}
    if not isinstance(opts, dict):
        opts = {}
    attempts = opts.get("attempts")
    attempts = attempts if type(attempts) is int and attempts > 0 else 1
    # Attempts made: finished ones (atm), and runs that stalled (started, never finished).
    started = _number(fields, "ats") - (1 if state == "active" else 0)
    made = max(_number(fields, "atm"), started)
    # A job BullMQ retried after its last attempt (atm kept) runs once more: job_from's rule.
    data, result = fields.get("data"), fields.get("returnvalue")
    traces = fields.get("stacktrace")
    traceback = None
    if traces:
        try:
            listed = json.loads(traces)
        except ValueError:
            listed = None
        if isinstance(listed, list) and listed:
            traceback = str(listed[-1])
    timestamp = _number(fields, "timestamp")
    timeout = opts.get("timeout")  # jexkv's; Node workers ignore it
    processed, finished = fields.get("processedOn"), fields.get("finishedOn")
    return job_from(
        {
            "id": job_id,
            "queue": queue,
            "name": fields.get("name", ""),
            "payload": decode(data) if data else None,
            "attempts": attempts,
            "attempts_made": made,
            "priority": _number(fields, "priority"),
            "created_at_ms": timestamp,
            "state": state,
            "error": fields.get("failedReason"),
            "result": None if result is None else _decode_result(result),
            "due_at_ms": timestamp + _number(fields, "delay"),
            "traceback": traceback,
            "stall_count": _number(fields, "stc"),
            "backoff": backoff_from_opts(opts.get("backoff")),
            "processed_at_ms": None if processed is None else int(processed),
            "finished_at_ms": None if finished is None else int(finished),
            "timeout_ms": timeout if type(timeout) is int and timeout > 0 else None,
        }
    )


def finished_from_event(job: Job, fields: dict[str, str], at_ms: int) -> Job:
    """``job`` as a ``completed`` or ``failed`` event of the queue's events stream says it
    finished (at ``at_ms``), for a job whose hash was removed when it finished."""
    done = dict(vars(job))
    if fields.get("event") == "completed":
        raw = fields.get("returnvalue")
        done.update(state="completed", result=None if raw is None else _decode_result(raw))
    else:
        done.update(state="dead", error=fields.get("failedReason"))
    done.update(finished_at_ms=at_ms, attempts_made=max(job.attempts_made, 1))
    return job_from(done)


def _decode_result(raw: str) -> Any:
    try:
        return decode(raw)
    except ValueError:
        return raw  # not JSON (written by another client): the text itself


def keep_opts(keep_completed: int, keep_dead: int | None) -> dict[str, Any]:
    """BullMQ's removeOnComplete/removeOnFail for a queue's keep settings, written into the
    opts of every job it adds, so Node workers finish jexkv's jobs the way jexkv would.
    ``"jexkv": 1`` marks them as jexkv's: a jexkv worker applies its own keep settings to
    such a job, and a job's own options only when a BullMQ producer set them (lib.lua's
    keep_rule)."""
    opts: dict[str, Any] = {"removeOnComplete": keep_completed or True, "jexkv": 1}
    if keep_dead is not None:
        opts["removeOnFail"] = keep_dead or True
    return opts


def new_job_opts(new: NewJob, keep: dict[str, Any]) -> str:
    """The ``opts`` field BullMQ's workers read for a job jexkv adds."""
    opts: dict[str, Any] = {"attempts": new.attempts}
    if new.backoff is not None:
        opts["backoff"] = new.backoff
    if new.priority:
        opts["priority"] = new.priority
    if new.delay_ms:
        opts["delay"] = new.delay_ms
    if new.job_id is not None:
        opts["jobId"] = new.job_id
    if new.timeout_ms is not None:
        opts["timeout"] = new.timeout_ms  # jexkv's own: Node workers ignore it
    opts.update(keep)
    return compact_json(opts)


# JSON text without spaces; UTF-8 as it is (Lua's cjson and Node read it as written).
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
