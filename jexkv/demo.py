"""``jexkv demo``: the KV store and the task queue at work, in a few seconds.

Rule: the demo uses only the public API, on a SQLite file in a temporary folder
unless a URL is given. On a given URL (an app's own store, perhaps) it keeps to a
namespace of its own, unique per run (``jexkv-demo-<hex>:``), for its keys and its
queue, so the app's workers never see its jobs and it never sees theirs; at the end it
deletes its keys and its jobs (README, "Two commands").
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
from typing import Any

import jexkv
from jexkv.urls import parse_url, redact_url

__all__ = ["run_demo"]


def _wait(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_demo(url: str | None = None) -> None:
    # The demo's failing job fails on purpose and says so itself: keep the engine's
    # failure log (with its traceback) for real programs.
    quiet = logging.NullHandler()
    logging.getLogger("jexkv").addHandler(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="jexkv-demo-") as folder:
            _story(url or f"sqlite:///{folder}/demo.db")
    finally:
        logging.getLogger("jexkv").removeHandler(quiet)


def _story(url: str) -> None:
    namespace = f"jexkv-demo-{secrets.token_hex(4)}:"
    print(f"jexkv demo on {redact_url(url)} (its keys and queue in namespace {namespace!r})\n")
    kv = jexkv.open_kv(url, namespace=namespace)
    queue = jexkv.open_queue(url, namespace=namespace)  # keep_completed=0: done jobs go
    try:
        token = secrets.token_urlsafe(12)
        kv.set(f"reset:{token}", {"user_id": 42}, ttl_ms=15 * 60 * 1000)
        print("1. Stored a password-reset token for user 42 with a 15-minute TTL.")
        print(f"   reset token: {token}   ttl_ms: {kv.ttl_ms(f'reset:{token}')}")
        claim = kv.pop(f"reset:{token}")
        print(f"   redeemed once with pop(): {claim}; a second pop(): {kv.pop(f'reset:{token}')}")

        kv.set("flash:welcome", "Welcome back!", ttl_ms=300)
        print("\n2. A short-lived key with a 300 ms TTL:")
        flash, ttl = kv.get("flash:welcome"), kv.ttl_ms("flash:welcome")
        print(f"   now:          get = {flash!r}, ttl_ms = {ttl}")
        time.sleep(0.35)
        print(f"   after 350 ms: get = {kv.get('flash:welcome')!r}: expired, gone")

        sent: list[float] = []
        results: dict[str, Any] = {}  # what the handler returned, by job id
        gateway_fixed = threading.Event()

        digests: list[str] = []

        def handle(job: jexkv.Job) -> Any:
            if job.name == "sendDigest":
                digests.append(job.id)
                print(f"   [worker] sending the {job.payload['kind']} digest (job {job.id})")
                return None
            if job.name == "sendWelcomeEmail":
                sent.append(time.monotonic())
                print(f"   [worker] sending the welcome email to {job.payload['email']}")
                return {"sent": True}
            if not gateway_fixed.is_set():
                error = ConnectionError("newsletter API unreachable")
                attempt = job.attempts_made + 1
                print(f"   [worker] {job.name} attempt {attempt}: {type(error).__name__}: {error}")
                raise error
            time.sleep(0.1)  # the newsletter API takes its time
            print(f"   [worker] {job.name} attempt {job.attempts_made + 1}: subscribed")
            results[job.id] = {"subscribed": True}
            return results[job.id]

        queue.register_worker("emails", handle, concurrency=2)
        print(
            "\n3. Registered an 'emails' worker; enqueued sendWelcomeEmail with a 1-second delay."
        )
        started = time.monotonic()
        queue.enqueue("emails", "sendWelcomeEmail", {"email": "ada@example.com"}, delay_ms=1000)
        print(f"   enqueue returned after {(time.monotonic() - started) * 1000:.1f} ms")
        _wait(lambda: bool(sent))
        if sent:
            print(f"   the job ran {sent[0] - started:.2f} s after it was enqueued")

        print("\n4. A job whose handler keeps failing: attempts=3, backoff 100 ms, doubling.")
        job = queue.enqueue(
            "emails",
            "subscribeNewsletter",
            {"email": "ada@example.com"},
            attempts=3,
            backoff=jexkv.Backoff.exponential(100),
        )
        if not _wait(lambda: _state(queue, job.id) == "dead"):
            raise DemoError(f"job {job.id} did not reach the dead-letter state in time")
        dead = queue.dead_letters("emails")
        print(f"   dead-letter state: {len(dead)} job(s); job {dead[0].id}: {dead[0].error}")
        print("   the API is back: retry it from the dead-letter state")
        gateway_fixed.set()
        retried = queue.retry_dead("emails", job.id)
        print(f"   retry_dead: {retried} job; wait_for() waits for its result")
        try:
            done = queue.wait_for("emails", job.id, timeout_ms=5000)
        except (jexkv.WaitTimeout, jexkv.JobNotFound) as exc:
            raise DemoError(f"job {job.id} did not complete as told: {exc}") from None
        # With keep_completed=0 (the default) a completed job is deleted once its waiter has it.
        print(f"   job {done.id} {done.state} with {done.result} (then deleted: keep_completed=0)")

        print("\n5. A schedule: a digest every 300 ms (cron works too: cron='0 3 * * *').")
        queue.schedule("emails", "digest", "sendDigest", {"kind": "frequent"}, every_ms=300)
        if not _wait(lambda: len(digests) >= 3):
            raise DemoError("the schedule did not make three jobs in time")
        [schedule] = queue.schedules("emails")
        queue.unschedule("emails", "digest")
        print(f"   {schedule.runs} jobs made so far, one per tick; unscheduled")

        print(f"\n6. Queue counts: {queue.counts('emails')}")
    finally:
        queue.close()
        _clean_up(url, namespace)
        kv.clear()
        kv.close()


class DemoError(jexkv.JexkvError):
    """The demo's story did not go as told (reported in one line by the command)."""


def _state(queue: jexkv.TaskQueue, job_id: str) -> str | None:
    job = queue.get_job("emails", job_id)
    return None if job is None else job.state


def _clean_up(url: str, namespace: str) -> None:
    """Delete what the story left: the dead job (completed ones are not kept), and on
    Redis the queue's own keys (its id counter, meta, events and marker), which start
    ``<prefix>:<namespace>:``."""
    with jexkv.open_queue(url, namespace=namespace) as queue:
        queue.purge_dead("emails")
    scheme, _, options = parse_url(url, {}, "queue")
    if scheme == "redis":
        prefix = options.get("prefix", "bull")
        with jexkv.open_kv(url, namespace="") as keys:  # the whole database: only ours go
            mine = list(keys.keys(f"{prefix}:{namespace.rstrip(':')}:"))
            if mine:
                keys.delete(*mine)
