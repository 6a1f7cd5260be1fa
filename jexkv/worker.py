"""The worker engine every queue adapter shares.

Rule: threads, timing, retries and shutdown live here, once; a backend only
offers the atomic steps of ``contracts.QueueBackend``. Per registered queue,
``concurrency`` handler threads each fetch, run and finish one job at a time.
One maintenance thread per TaskQueue renews the leases of running jobs every
``lease_ms / 2`` and runs the stalled-job check about every ``lease_ms`` (the
backend makes that at most once per interval across processes). A failing
handler fails that attempt only: the thread logs it and goes on. That holds for a
``BaseException`` too (``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``,
``asyncio.CancelledError``, ...): the attempt fails with ``"SystemExit: 3"``, the
thread hands its unstarted claims back and goes on, so no job is left active under
a lease renewed for ever. Signals reach the main thread only, so a ``KeyboardInterrupt``
there still stops the program; nothing else here catches a ``BaseException``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any, Callable

from jexkv.codec import encode, printable
from jexkv.contracts import Claim, QueueBackend
from jexkv.errors import ClosedError, ConfigError, SerializationError, Unrecoverable
from jexkv.jobs import Job
from jexkv.outages import OutageLog

__all__ = ["Workers"]

log = logging.getLogger("jexkv")

# The longest sleep of an idle worker between two looks at its queue. Backends wake idle
# workers when work comes (and at the next delayed job's due time), so this is only a
# safety net for a wake-up lost to a failure; a thousand idle queues cost 100 looks a second.
_IDLE_WAIT_S = 10.0
_ERROR_PAUSE_S = 0.5  # pause after a backend error, so a broken backend is not hammered
# Claim batches: a thread claims as many jobs at once as its handler (by a moving
# average of its run times) gets through in about _BATCH_S, between 1 and _MAX_BATCH;
# a handler that runs longer than that hands the rest of its batch back, so idle
# threads and processes can take them. Finished jobs are recorded together with the
# next claim, or after _BATCH_S at the latest: a batch costs one transaction.
_MAX_BATCH = 64
_BATCH_S = 0.005


class _Pool:
    """The handler threads of one queue."""

    def __init__(self, workers: Workers, queue: str, handler: Callable[[Job], Any], n: int):
        self.workers = workers
        self.queue = queue
        self.handler = handler
        self.running: dict[str, str] = {}  # job id -> lease token
        self.lock = threading.Lock()
        self.outage = OutageLog(log, f"queue {queue!r}")  # one line per outage, not per try
        self.threads = [
            threading.Thread(target=self._run, name=f"jexkv-worker-{queue}-{i}", daemon=True)
            for i in range(1, n + 1)
        ]

    def _run(self) -> None:
        """One handler thread: claim jobs, run them, acknowledge them in batches."""
        w = self.workers
        backend, stop, queue = w.backend, w.stopping, self.queue
        claims: list[Claim] = []  # claimed, not started
        acks: list[tuple[str, str, str]] = []  # done, not yet recorded: (id, token, result)
        first_ack = 0.0
        average = _BATCH_S  # moving average of the handler's run time (seconds)
        while claims or acks or not stop.is_set():
            try:
                if stop.is_set() and claims:
                    self._release(claims)  # claimed but not started: hand them back
                    claims = []
                    continue
                if not claims:
                    size = max(1, min(_MAX_BATCH, int(_BATCH_S / max(average, 1e-6))))
                    if acks:
                        claims = self._ack(acks, 0 if stop.is_set() else size)
                        acks = []
                        continue
                    if stop.is_set():
                        break  # stopping: never claim again
                    claims = self._hold(backend.fetch(queue, w.lease_ms, size))
                    self.outage.ok()
                    if not claims:
                        average = _BATCH_S  # idle: start again with one job at a time
                        backend.wait(queue, _IDLE_WAIT_S, stop)
                    continue
                claim = claims.pop(0)
                started = time.monotonic()
                result, fatal = self._run_one(claim)
                took = time.monotonic() - started
                if fatal and claims:  # the handler raised a BaseException: hand the rest back
                    self._release(claims)
                    claims = []
                if result is not None:
                    if not acks:
                        first_ack = started
                    acks.append((claim[0].id, claim[1], result))
                average = 0.8 * average + 0.2 * took
                if took > _BATCH_S and claims:  # slow: let idle threads take the rest
                    self._release(claims)
                    claims = []
                if acks and claims and time.monotonic() - first_ack > _BATCH_S:
                    self._ack(acks, 0)
                    acks = []
            except ClosedError:
                return
            except Exception as exc:
                self.outage.failed(exc, "fetching jobs")
                stop.wait(_ERROR_PAUSE_S)

    def _hold(self, claims: list[Claim]) -> list[Claim]:
        """Put claimed jobs under lease renewal."""
        if claims:
            with self.lock:
                for job, token in claims:
                    self.running[job.id] = token
        return claims

    def _drop(self, job_ids: Iterable[str]) -> None:
        with self.lock:
            for job_id in job_ids:
                self.running.pop(job_id, None)

    def _release(self, claims: list[Claim]) -> None:
        """Hand unstarted claims back; if that fails, their leases simply run out."""
        try:
            self.workers.backend.release(self.queue, [(job.id, token) for job, token in claims])
        except ClosedError:
            raise
        except Exception as exc:
            self.outage.failed(exc, f"handing back {len(claims)} jobs (their leases run out)")
        finally:
            self._drop(job.id for job, _ in claims)

    def _ack(self, acks: list[tuple[str, str, str]], claim_next: int) -> list[Claim]:
        """Record finished jobs in one step, claiming up to ``claim_next`` new ones."""
        w = self.workers
        try:
            lost, claims = w.backend.complete(
                self.queue, acks, w.keep_completed, w.lease_ms if claim_next else 0, claim_next
            )
        except ClosedError:
            raise
        except Exception as exc:
            # Not recorded: the jobs stay active, and the stalled check hands them
            # out again once their leases run out (at least once).
            doing = (
                f"recording {len(acks)} finished jobs (they run again once their leases run out)"
            )
            self.outage.failed(exc, doing)
            return []
        finally:
            self._drop(job_id for job_id, _, _ in acks)
        self.outage.ok()
        for job_id in lost:
            log.warning(
                "job %s on queue %r finished after its lease was lost; "
                "it was handed to another worker",
                job_id,
                self.queue,
            )
        return self._hold(claims)

    def _run_one(self, claim: Claim) -> tuple[str | None, bool]:
        """Run the handler: (the result as JSON or None when the attempt failed, whether
        the handler raised a BaseException that is no Exception)."""
        job, token = claim
        try:
            return encode(self.handler(job)), False
        except BaseException as exc:  # every handler failure fails the attempt, see above
            fatal = not isinstance(exc, Exception)
            try:
                self._failed(job, token, exc)
            except ClosedError:
                raise
            except Exception as exc2:
                self.outage.failed(exc2, f"recording the failure of job {job.id}")
            finally:
                self._drop([job.id])
            return None, fatal

    def _failed(self, job: Job, token: str, exc: BaseException) -> None:
        made = job.attempts_made + 1
        final = isinstance(exc, Unrecoverable) or made >= job.attempts
        retry_in = None  # ms; the backend reads its own clock (memory's never steps)
        if not final:
            retry_in = job.backoff.delay_for(made) if job.backoff is not None else 0
        if isinstance(exc, SerializationError):
            error = f"SerializationError: the handler's result is not JSON: {exc}"
        else:
            error = f"{type(exc).__name__}: {exc}"
        error = printable(error)  # a lone surrogate in a message would fail to store
        fatal = not isinstance(exc, Exception)
        log.error(
            "job %s (%s) on queue %r failed on attempt %d of %d%s: %s%s",
            job.id,
            job.name,
            self.queue,
            made,
            job.attempts,
            "" if final else ", will retry",
            error,
            f" (the handler raised {type(exc).__name__}, a BaseException: the attempt "
            "failed, the worker thread goes on)"
            if fatal
            else "",
            exc_info=exc,
        )
        w = self.workers
        w.backend.fail(
            self.queue,
            job.id,
            token,
            error,
            printable(traceback.format_exc()),
            retry_in,
            w.keep_dead,
        )

    def held(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.running.items())

    def still_held(self, job_ids: Iterable[str], tokens: dict[str, str]) -> list[str]:
        """Those of ``job_ids`` this pool still runs under the same lease token."""
        with self.lock:
            return [j for j in job_ids if self.running.get(j) == tokens.get(j)]


class Workers:
    """The handler pools and the maintenance thread of one TaskQueue object."""

    def __init__(
        self,
        backend: QueueBackend,
        *,
        lease_ms: int,
        keep_completed: int,
        keep_dead: int | None,
        max_stalls: int,
    ) -> None:
        self.backend = backend
        self.lease_ms = lease_ms
        self.keep_completed = keep_completed
        self.keep_dead = keep_dead
        self.max_stalls = max_stalls
        self.stopping = threading.Event()
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._maintenance: threading.Thread | None = None
        self._maintenance_stop = threading.Event()

    def start(self, queue: str, handler: Callable[[Job], Any], concurrency: int) -> None:
        with self._lock:
            if self.stopping.is_set():
                raise ClosedError("this task queue is closed")
            if queue in self._pools:
                raise ConfigError(f"queue {queue!r} has a worker already on this TaskQueue")
            pool = self._pools[queue] = _Pool(self, queue, handler, concurrency)
            for thread in pool.threads:
                thread.start()
            if self._maintenance is None:
                self._maintenance = threading.Thread(
                    target=self._maintain, name="jexkv-lease", daemon=True
                )
                self._maintenance.start()

    def _maintain(self) -> None:
        renew_every = self.lease_ms / 2000.0
        next_check = 0.0
        while not self._maintenance_stop.wait(renew_every):
            for pool in list(self._pools.values()):
                try:
                    held = pool.held()
                    if held:
                        lost = self.backend.extend(pool.queue, held, self.lease_ms)
                        # A job finished (and recorded) since held() was read is not lost.
                        for job_id in pool.still_held(lost, dict(held)):
                            log.warning("job %s lost its lease on renewal", job_id)
                    if time.monotonic() >= next_check:
                        self.backend.recover_stalled(
                            pool.queue, self.max_stalls, self.lease_ms, self.keep_dead
                        )
                    pool.outage.ok()
                except ClosedError:
                    return
                except Exception as exc:
                    pool.outage.failed(exc, "renewing leases and checking for stalled jobs")
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.lease_ms / 1000.0

    def stop(self, timeout_s: float | None) -> list[str]:
        """Stop fetching and wait for running handlers (up to ``timeout_s``); the ids of the
        jobs whose handlers were still running when the wait gave up."""
        with self._lock:
            self.stopping.set()
            pools = list(self._pools.values())
        for pool in pools:
            self.backend.notify(pool.queue)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for pool in pools:
            for thread in pool.threads:
                if thread is threading.current_thread():
                    continue  # close() called from a handler: it cannot wait for itself
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        abandoned = [job_id for pool in pools for job_id, _ in pool.held()]
        # Leases are renewed until the handlers are done (or the wait gave up).
        self._maintenance_stop.set()
        if self._maintenance is not None and self._maintenance is not threading.current_thread():
            self._maintenance.join()
        return abandoned
