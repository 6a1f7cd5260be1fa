"""The checks of a TaskQueue's arguments, once for the sync and the asyncio API.

Rule: everything a caller passes is checked here before any backend is touched, so a bad
argument raises InvalidArgument / InvalidArgumentType (or SerializationError for a payload)
and nothing is enqueued, registered or changed. Both APIs call these and then the backend:
their methods differ only in ``await``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from jexkv.errors import ConfigError, InvalidArgument, InvalidArgumentType
from jexkv.jobs import STATES, Backoff, NewJob, check_timeout, new_job
from jexkv.namespaces import check_queue_name

__all__ = [
    "already_registered",
    "check_close",
    "check_enqueue",
    "check_enqueue_many",
    "check_job",
    "check_list",
    "check_retry",
    "check_worker",
    "log_abandoned",
]

log = logging.getLogger("jexkv")

_JOB_KEYS = frozenset(
    {"name", "payload", "delay_ms", "attempts", "backoff", "priority", "job_id", "timeout_ms"}
)


def check_enqueue(
    queue: object,
    name: object,
    payload: Any,
    delay_ms: object,
    attempts: object,
    backoff: None | int | Backoff,
    priority: object,
    job_id: object,
    timeout_ms: object = None,
) -> NewJob:
    check_queue_name(queue)
    return new_job(
        name,
        payload,
        delay_ms=delay_ms,
        attempts=attempts,
        backoff=backoff,
        priority=priority,
        job_id=job_id,
        timeout_ms=timeout_ms,
    )


def check_enqueue_many(queue: object, jobs: Iterable[Mapping[str, Any]]) -> list[NewJob]:
    check_queue_name(queue)
    checked = []
    for i, item in enumerate(jobs):
        if not isinstance(item, Mapping):
            raise InvalidArgumentType(
                f"enqueue_many: item {i} must be a dict, got {type(item).__name__}"
            )
        unknown = set(item) - _JOB_KEYS
        if unknown:
            raise InvalidArgument(f"enqueue_many: item {i} has unknown keys {sorted(unknown)}")
        if "name" not in item:
            raise InvalidArgument(f"enqueue_many: item {i} has no 'name'")
        args = dict(item)
        checked.append(new_job(args.pop("name"), args.pop("payload", None), **args))
    return checked


def check_worker(
    queue: object,
    handler: Callable[..., Any],
    concurrency: object,
    processes: object = False,
    timeout_ms: object = None,
    max_jobs_per_process: object = None,
) -> tuple[str, Callable[..., Any], int | None]:
    """(queue name, the handler the slots run, the worker's timeout_ms), all checked; with
    ``processes=True`` the handler runs in child processes (jexkv/processes.py)."""
    name = check_queue_name(queue)
    if not callable(handler):
        raise InvalidArgumentType(f"handler must be callable, got {type(handler).__name__}")
    if type(concurrency) is not int or concurrency < 1:
        raise InvalidArgument(f"concurrency must be an int >= 1, got {concurrency!r}")
    if type(processes) is not bool:
        raise InvalidArgumentType(f"processes must be True or False, got {processes!r}")
    timeout = check_timeout(timeout_ms)
    if max_jobs_per_process is not None:
        if not processes:
            raise ConfigError("max_jobs_per_process goes with processes=True")
        if type(max_jobs_per_process) is not int or max_jobs_per_process < 1:
            raise InvalidArgument(
                f"max_jobs_per_process must be an int >= 1 or None, got {max_jobs_per_process!r}"
            )
    if processes:
        from jexkv.processes import ProcessHandler

        handler = ProcessHandler(handler, name, max_jobs_per_process)
    return name, handler, timeout


def check_job(queue: object, job_id: object) -> str:
    name = check_queue_name(queue)
    if not isinstance(job_id, str):
        raise InvalidArgumentType(f"job_id must be a str, got {type(job_id).__name__}")
    return name


def check_list(queue: object, state: object, limit: object) -> str:
    name = check_queue_name(queue)
    if state not in STATES:
        raise InvalidArgument(f"state must be one of {', '.join(STATES)}; got {state!r}")
    if type(limit) is not int or limit < 0:
        raise InvalidArgument(f"limit must be an int >= 0, got {limit!r}")
    return name


def check_retry(queue: object, job_id: object) -> str:
    name = check_queue_name(queue)
    if job_id is not None and not isinstance(job_id, str):
        raise InvalidArgumentType(f"job_id must be a str or None, got {type(job_id).__name__}")
    return name


def check_wait(queue: object, job_id: object, timeout_ms: object) -> str:
    """The queue name of ``wait_for(queue, job_id, timeout_ms=...)``, all three checked."""
    name = check_job(queue, job_id)
    _check_wait_ms(timeout_ms)
    return name


def check_close(timeout_ms: object) -> float | None:
    """The timeout of ``close(timeout_ms)`` in seconds (None: no bound)."""
    timeout = _check_wait_ms(timeout_ms)
    return None if timeout is None else timeout / 1000.0


def _check_wait_ms(timeout_ms: object) -> int | None:
    """The ``timeout_ms`` of a wait (``wait_for``, ``close``): an int >= 0, or None."""
    if timeout_ms is not None and (type(timeout_ms) is not int or timeout_ms < 0):
        raise InvalidArgument(f"timeout_ms must be an int >= 0 or None, got {timeout_ms!r}")
    return timeout_ms


def already_registered(queue: str) -> ConfigError:
    return ConfigError(f"queue {queue!r} has a worker already on this TaskQueue")


_ABANDONED = {
    "close": "their handlers go on, their outcome is not recorded, and each job runs again "
    "once its lease runs out where jobs outlive this queue object (SQLite, Redis, "
    "memory://NAME)",
    "aclose": "async handlers were cancelled and threads left to finish unrecorded; their "
    "jobs were handed back to waiting (or run again once their leases run out)",
}


def log_abandoned(
    timeout_ms: int | None, description: str, abandoned: list[str], method: str = "close"
) -> None:
    """What close() / aclose() says of the running jobs it gave up waiting for."""
    if abandoned:
        log.warning(
            "%s(timeout_ms=%s) on %s gave up on %d running jobs (%s): %s",
            method,
            timeout_ms,
            description,
            len(abandoned),
            ", ".join(abandoned[:10]) + (", …" if len(abandoned) > 10 else ""),
            _ABANDONED[method],
        )
