"""The worker engine's rules, once, for threads and asyncio tasks alike (docs/engine.md).

Rules:
* What a worker does is written here as generators that do no I/O themselves: a slot (one of
  a queue's ``concurrency`` workers) runs :func:`slot_steps`, a queue object's upkeep runs
  :func:`upkeep_steps`. Each yields *steps* (fetch, complete, release, wait, run the
  handler, fail, pause) and gets back what the step gave, or the exception a backend step
  raised, thrown in (a handler's comes back as a value, ``Raised``). A driver carries the
  steps out: jexkv/worker.py in threads over a sync backend, jexkv/tasks.py in asyncio
  tasks over an async one. So leases, retries, backoff, ``Unrecoverable``, dead letters,
  batching and the graceful stop are the same whatever runs the handler, and the backend's
  atomic steps stay the one source of truth.
* A failing handler fails that attempt only. That holds for a ``BaseException`` too
  (``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, a handler's own
  ``asyncio.CancelledError``): the attempt fails with ``"SystemExit: 3"``, the slot hands its
  unstarted claims back and goes on, so no job is left active under a lease renewed for ever.
* Claim batches: a slot claims as many jobs at once as its handler (by a moving average of
  its run times) gets through in about ``BATCH_S``, between 1 and ``MAX_BATCH``; a handler
  that runs longer hands the rest of its batch back, so idle workers and processes can take
  them. Finished jobs are recorded together with the next claim, or after ``BATCH_S`` at the
  latest: a batch costs one backend step.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Generator, Iterable
from types import CoroutineType
from typing import Any, Callable, Union

from jexkv.codec import encode, printable
from jexkv.contracts import Claim
from jexkv.errors import ClosedError, JobTimeout, SerializationError, Unrecoverable
from jexkv.jobs import Job
from jexkv.outages import OutageLog

__all__ = [
    "COMPLETE",
    "EXTEND",
    "FAIL",
    "FETCH",
    "PAUSE",
    "RECOVER",
    "RELEASE",
    "RUN",
    "SEEN",
    "WAIT",
    "Failure",
    "Queue",
    "Raised",
    "Settings",
    "attempt_timeout_s",
    "failure",
    "is_async_handler",
    "run_handler",
    "slot_steps",
    "timed_out",
    "upkeep_steps",
]

log = logging.getLogger("jexkv")

# The steps a program yields. A backend step is a tuple whose first item names the
# QueueBackend method that carries it out, with the method's arguments after it (the
# settings filled in here), and gives back what the method returns; the drivers carry
# out WAIT and PAUSE themselves, and a Job alone is a RUN step.
FETCH = "fetch"  # (FETCH, queue, lease_ms, limit) -> claims
COMPLETE = "complete"  # (COMPLETE, queue, acks, keep, lease_ms, claim_next) -> (lost, claims)
RELEASE = "release"  # (RELEASE, queue, [(id, token), ...]) -> None
FAIL = "fail"  # (FAIL, queue, id, token, error, traceback, retry in ms or None, keep_dead)
EXTEND = "extend"  # (EXTEND, queue, held, lease_ms) -> ids whose lease was lost
RECOVER = "recover_stalled"  # (RECOVER, queue, max_stalls, lease_ms, keep_dead) -> None
SEEN = "seen"  # (SEEN, queue) -> the queue's wake-up generation, read before a look
WAIT = "@wait"  # (WAIT, queue, seen) -> None: until woken, due, stopping or IDLE_WAIT_S
PAUSE = "@pause"  # (PAUSE, seconds) -> None (ends early when stopping)
RUN = "@run"  # a Job, alone (the commonest step: no tuple) -> the handler's result, or Raised

# The longest sleep of an idle worker between two looks at its queue. Backends wake idle
# workers when work comes (and at the next delayed job's due time), so this is only a
# safety net for a wake-up lost to a failure; a thousand idle queues cost 100 looks a second.
IDLE_WAIT_S = 10.0
ERROR_PAUSE_S = 0.5  # pause after a backend error, so a broken backend is not hammered
MAX_BATCH = 64
BATCH_S = 0.005


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is an ``async def`` function (or a callable object whose
    ``__call__`` is one): its jobs run as coroutines, never as a returned value."""
    import inspect

    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method, not callability
    )


class Settings:
    """What a queue object's workers keep to (open_queue's options)."""

    __slots__ = ("keep_completed", "keep_dead", "lease_ms", "max_stalls")

    def __init__(
        self, lease_ms: int, keep_completed: int, keep_dead: int | None, max_stalls: int
    ) -> None:
        self.lease_ms = lease_ms
        self.keep_completed = keep_completed
        self.keep_dead = keep_dead
        self.max_stalls = max_stalls


class Queue:
    """One registered queue of a queue object: its handler, and the jobs its slots hold
    (job id -> lease token), which the upkeep renews."""

    def __init__(
        self, name: str, handler: Callable[[Job], Any], timeout_ms: int | None = None
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout_ms = timeout_ms  # the worker's bound on one attempt (a job's own wins)
        self.running: dict[str, str] = {}
        self.lock = threading.Lock()
        self.outage = OutageLog(log, f"queue {name!r}")  # one line per outage, not per try

    def hold(self, claims: list[Claim]) -> list[Claim]:
        """Put claimed jobs under lease renewal."""
        if claims:
            with self.lock:
                for job, token in claims:
                    self.running[job.id] = token
        return claims

    def drop(self, job_ids: Iterable[str]) -> None:
        with self.lock:
            for job_id in job_ids:
                self.running.pop(job_id, None)

    def held(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.running.items())

    def still_held(self, job_ids: Iterable[str], tokens: dict[str, str]) -> list[str]:
        """Those of ``job_ids`` this queue's slots still run under the same lease token."""
        with self.lock:
            return [j for j in job_ids if self.running.get(j) == tokens.get(j)]


def attempt_timeout_s(q: Queue, job: Job) -> float | None:
    """How long one attempt of ``job`` may run (seconds; None: no bound): the job's own
    ``timeout_ms`` wins over the worker's."""
    timeout = job.timeout_ms or q.timeout_ms
    return None if timeout is None else timeout / 1000.0


def timed_out(job: Job, timeout_s: float) -> JobTimeout:
    return JobTimeout(f"job {job.id} ran past its timeout of {round(timeout_s * 1000)} ms")


class Raised:
    """What a RUN step gives back when the handler raised (anything, a BaseException
    included): the exception, as a value, so the program never mistakes it for its own
    close (a GeneratorExit thrown in)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def run_handler(handler: Callable[..., Any], *args: Any) -> Any:
    """A handler's outcome, in the calling thread: what it returned, or Raised (anything
    it raised, a BaseException included: the attempt fails, the caller goes on)."""
    try:
        return handler(*args)
    except BaseException as exc:
        return Raised(exc)


class Failure:
    """A failed attempt, decided: the error text kept, and when to retry (None: dead)."""

    __slots__ = ("error", "fatal", "final", "retry_in_ms")

    def __init__(self, error: str, retry_in_ms: int | None, final: bool, fatal: bool) -> None:
        self.error, self.retry_in_ms, self.final, self.fatal = error, retry_in_ms, final, fatal


def failure(job: Job, exc: BaseException) -> Failure:
    """What a failed attempt of ``job`` comes to: retried after its backoff while attempts
    remain (``Unrecoverable``: never), its error as ``"ExcType: message"``."""
    made = job.attempts_made + 1
    final = isinstance(exc, Unrecoverable) or made >= job.attempts
    retry_in = None  # ms; the backend reads its own clock (memory's never steps)
    if not final:
        retry_in = job.backoff.delay_for(made) if job.backoff is not None else 0
    if isinstance(exc, SerializationError):
        error = f"SerializationError: the handler's result is not JSON: {exc}"
    else:
        error = f"{type(exc).__name__}: {exc}"
    # A lone surrogate in a message would fail to store.
    return Failure(printable(error), retry_in, final, not isinstance(exc, Exception))


def _log_failure(queue: str, job: Job, exc: BaseException, decided: Failure) -> None:
    log.error(
        "job %s (%s) on queue %r failed on attempt %d of %d%s: %s%s",
        job.id,
        job.name,
        queue,
        job.attempts_made + 1,
        job.attempts,
        "" if decided.final else ", will retry",
        decided.error,
        f" (the handler raised {type(exc).__name__}, a BaseException: the attempt failed, "
        "the worker goes on)"
        if decided.fatal
        else "",
        exc_info=exc,
    )


Step = Union[tuple[Any, ...], Job]  # noqa: UP007 - evaluated at run time, on Python 3.9 too
Program = Generator[Step, Any, None]


def slot_steps(q: Queue, settings: Settings, stopping: Callable[[], bool]) -> Program:
    """One slot: claim jobs, run them one at a time, record them in batches, until
    ``stopping()``; then hand back what it claimed and did not start, record what it ran."""
    name = q.name
    claims: list[Claim] = []  # claimed, not started
    acks: list[tuple[str, str, str]] = []  # done, not yet recorded: (id, token, result)
    first_ack = 0.0
    average = BATCH_S  # moving average of the handler's run time (seconds)
    while claims or acks or not stopping():
        try:
            if claims and stopping():
                yield from _release(q, claims)  # claimed but not started: hand them back
                claims = []
                continue
            if not claims:
                size = max(1, min(MAX_BATCH, int(BATCH_S / max(average, 1e-6))))
                if acks:
                    claims = yield from _ack(q, settings, acks, 0 if stopping() else size)
                    acks = []
                    continue
                if stopping():
                    break  # stopping: never claim again
                seen = yield (SEEN, name)  # before the look: no wake-up is missed
                claims = q.hold((yield (FETCH, name, settings.lease_ms, size)))
                q.outage.ok()
                if not claims:
                    average = BATCH_S  # idle: start again with one job at a time
                    yield (WAIT, name, seen)
                continue
            job, token = claims.pop(0)
            started = time.monotonic()
            outcome = yield job  # RUN
            result = None
            if type(outcome) is Raised:  # every handler failure fails the attempt
                fatal = yield from _fail(q, settings, job, token, outcome.exc)
                if fatal and claims:  # a BaseException that is no Exception: hand the rest back
                    yield from _release(q, claims)
                    claims = []
            elif type(outcome) is CoroutineType:
                outcome.close()  # never awaited: say so once, here, not as a warning later
                yield from _fail(q, settings, job, token, _not_awaited(q.handler))
            else:
                try:
                    result = encode(outcome)
                except SerializationError as exc:
                    yield from _fail(q, settings, job, token, exc)
            took = time.monotonic() - started
            if result is not None:
                if not acks:
                    first_ack = started
                acks.append((job.id, token, result))
            average = 0.8 * average + 0.2 * took
            if took > BATCH_S and claims:  # slow: let idle workers take the rest
                yield from _release(q, claims)
                claims = []
            if acks and claims and time.monotonic() - first_ack > BATCH_S:
                yield from _ack(q, settings, acks, 0)
                acks = []
        except ClosedError:
            return
        except Exception as exc:
            q.outage.failed(exc, "fetching jobs")
            yield (PAUSE, ERROR_PAUSE_S)


def _not_awaited(handler: Callable[..., Any]) -> TypeError:
    name = getattr(handler, "__qualname__", type(handler).__name__)
    return TypeError(
        f"the handler {name} returned a coroutine, which jexkv does not await: a plain "
        "function that returns one is not an async handler; make the handler itself "
        "`async def` (or its __call__)"
    )


def _release(q: Queue, claims: list[Claim]) -> Program:
    """Hand unstarted claims back; if that fails, their leases simply run out."""
    try:
        yield (RELEASE, q.name, [(job.id, token) for job, token in claims])
    except ClosedError:
        raise
    except Exception as exc:
        q.outage.failed(exc, f"handing back {len(claims)} jobs (their leases run out)")
    finally:
        q.drop(job.id for job, _ in claims)


def _ack(
    q: Queue, settings: Settings, acks: list[tuple[str, str, str]], claim_next: int
) -> Generator[Step, Any, list[Claim]]:
    """Record finished jobs in one step, claiming up to ``claim_next`` new ones."""
    try:
        lease_ms = settings.lease_ms if claim_next else 0
        step = (COMPLETE, q.name, acks, settings.keep_completed, lease_ms, claim_next)
        lost, claims = yield step
    except ClosedError:
        raise
    except Exception as exc:
        # Not recorded: the jobs stay active, and the stalled check hands them out again
        # once their leases run out (at least once).
        doing = f"recording {len(acks)} finished jobs (they run again once their leases run out)"
        q.outage.failed(exc, doing)
        return []
    finally:
        q.drop(job_id for job_id, _, _ in acks)
    q.outage.ok()
    for job_id in lost:
        log.warning(
            "job %s on queue %r finished after its lease was lost; it was handed to another worker",
            job_id,
            q.name,
        )
    return q.hold(claims)


def _fail(
    q: Queue, settings: Settings, job: Job, token: str, exc: BaseException
) -> Generator[Step, Any, bool]:
    """Record a failed attempt; whether the handler raised a BaseException (no Exception)."""
    decided = failure(job, exc)
    _log_failure(q.name, job, exc, decided)
    # A handler run in a child process brings its own traceback (processes.py).
    remote = getattr(exc, "remote_traceback", None)
    tb = remote or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tb = printable(tb)
    try:
        retry_in, keep = decided.retry_in_ms, settings.keep_dead
        yield (FAIL, q.name, job.id, token, decided.error, tb, retry_in, keep)
    except ClosedError:
        raise
    except Exception as exc2:
        q.outage.failed(exc2, f"recording the failure of job {job.id}")
    finally:
        q.drop([job.id])
    return decided.fatal


def upkeep_steps(
    queues: Callable[[], list[Queue]], settings: Settings, stopping: Callable[[], bool]
) -> Program:
    """Every ``lease_ms / 2``: renew the leases of the jobs the queues' slots hold; about
    every ``lease_ms``: the stalled-job check (the backend makes it once per interval
    across processes). Ends when ``stopping()``."""
    renew_every = settings.lease_ms / 2000.0
    next_check = 0.0
    while True:
        yield (PAUSE, renew_every)
        if stopping():
            return
        check = time.monotonic() >= next_check
        for q in queues():
            try:
                held = q.held()
                if held:
                    lost = yield (EXTEND, q.name, held, settings.lease_ms)
                    # A job finished (and recorded) since held() was read is not lost.
                    for job_id in q.still_held(lost, dict(held)):
                        log.warning("job %s lost its lease on renewal", job_id)
                if check:
                    lease_ms, keep = settings.lease_ms, settings.keep_dead
                    yield (RECOVER, q.name, settings.max_stalls, lease_ms, keep)
                q.outage.ok()
            except ClosedError:
                return
            except Exception as exc:
                q.outage.failed(exc, "renewing leases and checking for stalled jobs")
        if check:
            next_check = time.monotonic() + settings.lease_ms / 1000.0
