"""A worker process for the cross-process queue tests (tests/processes/test_queue_processes.py).

It only talks to jexkv's public API, so it runs against any queue URL (sqlite://, redis://);
its files are written with tests/helpers.py (the checkout on PYTHONPATH, as start_process has it).

Usage: python queue_worker.py MODE URL FOLDER INDEX [CONFIG_JSON]

CONFIG_JSON: {"queue": str, "options": {open_queue kwargs}, "concurrency": int,
              "sleep": seconds per job, "count": int, "job_id": str, "deadline": seconds}

Modes (every file it writes lives in FOLDER and is named after INDEX):
  drain    handler appends "pid job_id n\\n" to exec-INDEX.txt; runs until FOLDER/stop exists,
           then close()s the queue.
  record   handler appends one JSON line per run (job fields, pid, start time) to
           ran-INDEX.jsonl and returns {"ok": job.id}; runs until FOLDER/stop, then close()s.
  hang     handler appends one JSON line to started-INDEX.jsonl, then sleeps for a long time
           (the test kills the process with SIGKILL).
  enqueue  waits for FOLDER/go, enqueues `count` jobs with job_id `job_id`, writes
           result-INDEX.json ({"jobs": [...], "errors": [...]}), close()s.
Each mode first creates ready-INDEX once it is set up. Lines are written with one os.write on
an O_APPEND descriptor, so a line is never torn or lost even with several handler threads.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jexkv
from tests.helpers import append_line, wait_for_file, write_json


def _info(job: jexkv.Job) -> dict[str, object]:
    return {
        "id": job.id,
        "queue": job.queue,
        "name": job.name,
        "payload": job.payload,
        "attempts": job.attempts,
        "attempts_made": job.attempts_made,
        "stall_count": getattr(job, "stall_count", None),
        "state": job.state,
        "pid": os.getpid(),
        "started": time.time(),
    }


def main() -> int:
    mode, url, folder, index = sys.argv[1:5]
    cfg = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    queue = cfg.get("queue", "jobs")
    deadline = time.monotonic() + float(cfg.get("deadline", 90))
    pause = float(cfg.get("sleep", 0))
    q = jexkv.open_queue(url, **cfg.get("options", {}))
    ready = os.path.join(folder, "ready-" + index)
    stop = os.path.join(folder, "stop")

    if mode == "enqueue":
        open(ready, "w").close()
        if not wait_for_file(os.path.join(folder, "go"), deadline):
            return 4
        jobs, errors = [], []
        for n in range(int(cfg["count"])):
            try:
                job = q.enqueue(queue, "dup", {"proc": index, "n": n}, job_id=cfg["job_id"])
                jobs.append({"id": job.id, "payload": job.payload, "created": job.created_at_ms})
            except Exception as exc:  # recorded for the test to report
                errors.append(repr(exc))
        q.close()
        write_json(
            os.path.join(folder, "result-" + index + ".json"), {"jobs": jobs, "errors": errors}
        )
        return 0

    if mode == "drain":
        log = os.path.join(folder, "exec-" + index + ".txt")

        def handler(job: jexkv.Job) -> object:
            append_line(log, f"{os.getpid()} {job.id} {job.payload['n']}\n")
            if pause:
                time.sleep(pause)
            return None

    elif mode == "record":
        log = os.path.join(folder, "ran-" + index + ".jsonl")

        def handler(job: jexkv.Job) -> object:
            info = _info(job)
            append_line(log, json.dumps(info) + "\n")
            if pause:
                time.sleep(pause)
            return {"ok": job.id}

    elif mode == "hang":
        log = os.path.join(folder, "started-" + index + ".jsonl")

        def handler(job: jexkv.Job) -> object:
            append_line(log, json.dumps(_info(job)) + "\n")
            time.sleep(600)
            return None

    else:
        raise SystemExit(f"unknown mode {mode!r}")

    q.register_worker(queue, handler, concurrency=int(cfg.get("concurrency", 1)))
    open(ready, "w").close()
    if not wait_for_file(stop, deadline):
        os._exit(3)  # never stopped: give up without waiting for handlers
    if mode == "hang":
        os._exit(0)
    q.close()
    open(os.path.join(folder, "closed-" + index), "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
