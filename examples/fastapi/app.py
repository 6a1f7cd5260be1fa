"""The seed's story in FastAPI terms: jexkv.aio in an async web app.

A password-reset endpoint stores a one-time token with a 15-minute TTL and enqueues the email;
the reset endpoint pops the token (atomic: a link works once); signing up enqueues a welcome
email; the workers are ``async def`` handlers on the app's own event loop, started and stopped
with the app (FastAPI's lifespan). Nothing here blocks the loop: the KV calls and enqueues are
awaited (Redis through jexkv's asyncio client, SQLite in threads), and the health endpoint
answers while they wait.

Needs FastAPI and httpx (``pip install fastapi httpx``, or the project's test extras); jexkv
itself needs nothing. Serve it with ``uvicorn examples.fastapi.app:app`` (set ``JEXKV_URL`` to
``sqlite:///app.db`` or ``redis://localhost:6379/0``; the default is ``memory://``), or run the
story without a server, through httpx's ASGI transport:

    python examples/fastapi/app.py
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, HTTPException

try:
    import jexkv.aio
except ImportError:  # run from a clone, not installed: use the checkout's jexkv
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import jexkv.aio

RESET_TTL_MS = 15 * 60 * 1000
sent: list[dict[str, str]] = []  # what the "email client" sent, for the story below


async def send_email(to: str, subject: str, body: str) -> None:
    await asyncio.sleep(0.05)  # an HTTP call to the mail provider, awaited
    sent.append({"to": to, "subject": subject, "body": body})


async def handle_email(job: jexkv.Job) -> dict[str, str]:
    """The seed's worker, as Python writes it: ``async (job) => {…}``."""
    if job.name == "sendWelcomeEmail":
        await send_email(job.payload["email"], "Welcome!", "Glad you are here.")
    elif job.name == "sendResetEmail":
        link = f"https://example.com/reset/{job.payload['token']}"
        await send_email(job.payload["email"], "Reset your password", link)
    else:
        raise jexkv.Unrecoverable(f"no such email: {job.name}")
    return {"sent_to": job.payload["email"]}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One store and one queue per process; open_* do no I/O, so this never blocks.
    app.state.kv = jexkv.aio.open_kv()
    app.state.queue = jexkv.aio.open_queue(keep_completed=100)
    app.state.queue.register_worker("emails", handle_email, concurrency=20)
    try:
        yield
    finally:  # running emails finish (up to 10 s), then the rest are handed back
        await app.state.queue.aclose(timeout_ms=10_000)
        await app.state.kv.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/signup")
async def signup(email: str) -> dict[str, str]:
    job = await app.state.queue.enqueue("emails", "sendWelcomeEmail", {"email": email})
    return {"email": email, "job": job.id}


@app.post("/password-reset")
async def request_reset(email: str) -> dict[str, str]:
    token = secrets.token_urlsafe(16)
    await app.state.kv.set(f"reset:{token}", {"email": email}, ttl_ms=RESET_TTL_MS)
    job = await app.state.queue.enqueue(
        "emails", "sendResetEmail", {"email": email, "token": token}, attempts=3, backoff=1000
    )
    return {"job": job.id}


@app.post("/password-reset/{token}")
async def reset(token: str) -> dict[str, str]:
    claim = await app.state.kv.pop(f"reset:{token}")  # atomic: the link works once
    if claim is None:
        raise HTTPException(status_code=410, detail="this link was used or has expired")
    return {"reset": claim["email"]}


@app.get("/jobs/{job_id}")
async def job_state(job_id: str) -> dict[str, object]:
    job = await app.state.queue.get_job("emails", job_id)
    if job is None:
        raise HTTPException(status_code=404, detail="no such job (or no longer kept)")
    return {"state": job.state, "result": job.result}


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


async def story() -> None:
    """Call the endpoints as a browser would, through httpx's ASGI transport."""
    import httpx

    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            signed = (await client.post("/signup", params={"email": "ada@example.com"})).json()
            print("signed up, welcome email enqueued as job", signed["job"])
            asked = await client.post("/password-reset", params={"email": "ada@example.com"})
            print("reset requested, email enqueued as job", asked.json()["job"])
            for job_id in (signed["job"], asked.json()["job"]):
                while (await client.get(f"/jobs/{job_id}")).json()["state"] != "completed":
                    await asyncio.sleep(0.01)
            print("emails sent:", [(mail["to"], mail["subject"]) for mail in sent])
            token = sent[-1]["body"].rsplit("/", 1)[1]
            first = await client.post(f"/password-reset/{token}")
            again = await client.post(f"/password-reset/{token}")
            print("the reset link, clicked twice:", first.status_code, again.status_code)
            assert first.json() == {"reset": "ada@example.com"} and again.status_code == 410
            print("health while all this ran:", (await client.get("/health")).json())


if __name__ == "__main__":
    asyncio.run(story())
