"""Send a welcome email in the background when a user signs up.

This is the pattern the task queue is for: a tiny in-memory "users" repository calls an
after-create hook, the hook enqueues a ``sendWelcomeEmail`` job (which returns at once), and
a worker registered with ``register_worker("emails", handler)`` sends the email on a
background thread. Creating the user does not wait for the email; ``close()`` waits for the
job that is running. (``close()`` stops fetching: a job no worker has started yet stays queued,
which on ``memory://`` means it goes away with the process; on SQLite it waits in the file.)

Run it from the repository root, installed or not: ``python examples/welcome_email.py``
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

try:
    import jexkv
except ImportError:  # run from a clone, not installed: use the checkout's jexkv
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import jexkv

START = time.monotonic()
_PRINT = threading.Lock()  # the app and the worker thread print; keep their lines whole


def say(message: str) -> None:
    with _PRINT:
        print(f"[{(time.monotonic() - START) * 1000:6.0f} ms] {message}", flush=True)


class Users:
    """A minimal users repository with after-create hooks."""

    def __init__(self) -> None:
        self._rows: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._after_create: list[Callable[[dict[str, Any]], None]] = []

    def after_create(self, hook: Callable[[dict[str, Any]], None]) -> None:
        self._after_create.append(hook)

    def create(self, email: str, name: str) -> dict[str, Any]:
        user = {"id": next(self._ids), "email": email, "name": name}
        self._rows[user["id"]] = user
        for hook in self._after_create:
            hook(dict(user))
        return user


def main() -> None:
    queue = jexkv.open_queue("memory://")  # or "sqlite:///jobs.db", or $JEXKV_URL
    picked_up, sent = threading.Event(), threading.Event()

    def handle(job: jexkv.Job) -> dict[str, Any]:
        if job.name != "sendWelcomeEmail":
            raise jexkv.Unrecoverable(f"unknown job {job.name!r}")
        say(f"worker: job {job.id} ({job.name}) started, talking to the mail server...")
        picked_up.set()
        time.sleep(0.5)  # a slow SMTP server
        say(f"worker: sent 'Welcome, {job.payload['name']}!' to {job.payload['email']}")
        sent.set()
        return {"delivered_to": job.payload["email"]}

    queue.register_worker("emails", handle)

    users = Users()
    users.after_create(
        lambda user: queue.enqueue(
            "emails", "sendWelcomeEmail", {"email": user["email"], "name": user["name"]}
        )
    )

    t0 = time.monotonic()
    user = users.create("ada@example.com", "Ada")
    took_ms = (time.monotonic() - t0) * 1000
    say(f"app: users.create() returned user {user['id']} in {took_ms:.1f} ms")
    say(f"app: welcome email sent yet? {sent.is_set()}")
    assert not sent.is_set(), "create() should not wait for the email"

    say("app: serving other requests while a worker picks the job up...")
    assert picked_up.wait(10), "no worker picked the job up"
    say("app: shutting down; queue.close() waits for the running job")
    queue.close()
    say(f"app: closed; welcome email sent? {sent.is_set()}")
    assert sent.is_set()


if __name__ == "__main__":
    main()
