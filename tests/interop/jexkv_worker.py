"""A jexkv worker in its own process, for the tests that kill a worker mid-job.

``python -m tests.interop.jexkv_worker URL QUEUE OPTIONS_JSON`` opens the queue with the
options (``open_queue(URL, **OPTIONS)``), registers a handler and prints JSON lines:
``{"ready": true}``, then ``{"event": "active", "id": …}`` as each job starts. A job whose
payload has ``"hangOn": "jexkv"`` never finishes (the test kills this process); others return
``{"by": "jexkv", "name": …, "payload": …}``. SIGTERM closes the queue and exits.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

import jexkv


def emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def handle(job: jexkv.Job) -> object:
    emit({"event": "active", "id": job.id, "name": job.name})
    if isinstance(job.payload, dict) and job.payload.get("hangOn") == "jexkv":
        threading.Event().wait()
    return {"by": "jexkv", "name": job.name, "payload": job.payload}


def main(url: str, queue_name: str, options: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    queue = jexkv.open_queue(url, **json.loads(options))
    try:
        queue.register_worker(queue_name, handle)
        emit({"ready": True})
        while not stop.wait(0.2):
            pass
    finally:
        queue.close(timeout_ms=1000)


if __name__ == "__main__":
    main(*sys.argv[1:4])
