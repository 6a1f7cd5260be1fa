"""A BullMQ job hash -> jexkv.Job.

Rule: only here do BullMQ's field names meet jexkv's. The hash comes from a script as a flat
list of bytes (``HGETALL``); fields a Node BullMQ producer writes differently (a numeric
backoff, a custom backoff type, missing fields) are read as BullMQ reads them.
"""

from __future__ import annotations

import json
from typing import Any

from jexkv.codec import decode
from jexkv.jobs import Backoff, Job, job_from

__all__ = ["hash_to_job", "new_job_opts"]


def _int(fields: dict[bytes, bytes], name: bytes, default: int = 0) -> int:
    value = fields.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _backoff(spec: Any) -> Backoff | None:
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
    fields = dict(zip(it, it))
    try:
        opts = json.loads(fields.get(b"opts") or b"{}")
    except ValueError:
        opts = {}
    if not isinstance(opts, dict):
        opts = {}
    attempts = opts.get("attempts")
    # Attempts made: finished ones (atm), and runs that stalled (started, never finished).
    started = _int(fields, b"ats") - (1 if state == "active" else 0)
    made = max(_int(fields, b"atm"), started)
    data, result = fields.get(b"data"), fields.get(b"returnvalue")
    traces = fields.get(b"stacktrace")
    traceback = None
    if traces:
        try:
            listed = json.loads(traces)
        except ValueError:
            listed = None
        if isinstance(listed, list) and listed:
            traceback = str(listed[-1])
    error = fields.get(b"failedReason")
    timestamp = _int(fields, b"timestamp")
    processed, finished = fields.get(b"processedOn"), fields.get(b"finishedOn")
    return job_from(
        job_id,
        queue,
        fields.get(b"name", b"").decode(),
        decode(data.decode()) if data else None,
        attempts if type(attempts) is int and attempts > 0 else 1,
        made,
        _int(fields, b"priority"),
        timestamp,
        state,
        None if error is None else error.decode(),
        None if result is None else _decode_result(result),
        timestamp + _int(fields, b"delay"),
        traceback,
        _int(fields, b"stc"),
        _backoff(opts.get("backoff")),
        None if processed is None else int(processed),
        None if finished is None else int(finished),
    )


def _decode_result(raw: bytes) -> Any:
    try:
        return decode(raw.decode())
    except ValueError:
        return raw.decode()  # not JSON (written by another client): the text itself


_PLAIN_OPTS: dict[int, str] = {}  # attempts -> the opts of a job with no other option


def new_job_opts(attempts: int, backoff: dict[str, Any] | None, priority: int, delay: int,
                 job_id: str | None) -> str:  # fmt: skip
    """The ``opts`` field BullMQ's workers read for a job jexkv adds."""
    if backoff is None and not priority and not delay and job_id is None:
        plain = _PLAIN_OPTS.get(attempts)
        if plain is None:
            plain = _PLAIN_OPTS[attempts] = f'{{"attempts":{attempts}}}'
            if len(_PLAIN_OPTS) > 64:
                _PLAIN_OPTS.clear()
        return plain
    opts: dict[str, Any] = {"attempts": attempts}
    if backoff is not None:
        opts["backoff"] = backoff
    if priority:
        opts["priority"] = priority
    if delay:
        opts["delay"] = delay
    if job_id is not None:
        opts["jobId"] = job_id
    return json.dumps(opts, separators=(",", ":"))
