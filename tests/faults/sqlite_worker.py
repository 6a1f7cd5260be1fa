"""A helper process for the SQLite fault tests (tests/faults/test_sqlite_faults.py).

It only uses jexkv's public API (and tests/helpers.py for its files: the checkout must be on
PYTHONPATH, as the start_process fixture has it).
Usage: python sqlite_worker.py MODE URL FOLDER INDEX [CONFIG_JSON]

Modes (every file it writes lives in FOLDER; log lines are written with one os.write on an
O_APPEND descriptor, so a line is either whole in the file or absent, even when the process is
killed with SIGKILL: the kernel keeps what write() took, whatever happens to the process):

  writer  KV and queue writes in a loop, forever (the test SIGKILLs it). Before each call it
          appends an intent line to ops.jsonl, after the call returned an ack line:
          {"ph": "i"|"a", "tag": "R.T.N", "op": ..., ...}. CONFIG: {"round": R, "threads": n}.
          Thread T writes only keys "kT-*" (so each key has at most one call in flight), and
          every thread increments the shared counters "c0".."c2" and enqueues to "crash".
  batch   a worker of queue "batch" (keep_completed=10**6, CONFIG "lease_ms", "max_stalls",
          "concurrency", "sleep"): the handler appends "JOB_ID\\n" to ran-INDEX.txt, sleeps,
          and returns {"pid": pid}. Runs until FOLDER/stop exists, then close()s.
  load    one of several processes sharing a file: a worker of queue "load" (concurrency 2,
          appending "JOB_ID\\n" to exec-INDEX.txt) and, after FOLDER/go appears, CONFIG
          "duration" seconds of mixed calls (set, get, incr, pop, enqueue, enqueue_many) on the
          main thread; writes produced-INDEX.json, waits for FOLDER/stop, close()s, and writes
          result-INDEX.json: what was acknowledged, every exception a call raised (type,
          message, seconds it took) and the jexkv log records of WARNING and above.
  fill    fills the file until a write fails (CONFIG "limit": when set, RLIMIT_FSIZE is set to
          the file's size plus that many bytes first, with SIGXFSZ ignored, so writes fail with
          EFBIG as on a full disk), then probes reads and writes, close()s, and prints one JSON
          result to stdout.
  pause-open  opens the store (CONFIG "kind": "kv" or "queue") with its SQLite connections
          paused once, right after the first ``PRAGMA user_version`` read (the first step of
          checking a file before using it) and before the next statement: it creates
          FOLDER/paused, waits for FOLDER/resume, goes on, and prints one JSON line: {"ok":
          true} or the error. It stands for a process descheduled at that moment.
Each mode except fill and pause-open creates ready-INDEX once it is set up.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from typing import Any, Callable

import jexkv
from tests.helpers import append_line, wait_for_file, write_json


def _error(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "msg": str(exc)}


# -- writer: the SIGKILL loop ---------------------------------------------------------------


def _enqueue_id(q: jexkv.TaskQueue, payload: dict[str, Any]) -> str:
    return q.enqueue("crash", "job", payload).id


def _enqueue_many_ids(q: jexkv.TaskQueue, items: list[dict[str, Any]]) -> list[str]:
    return [job.id for job in q.enqueue_many("crash", items)]


def _writer_thread(url: str, log: str, rnd: int, t: int) -> None:
    rng = random.Random(f"{rnd}-{t}")
    kv = jexkv.open_kv(url)
    q = jexkv.open_queue(url)
    n = 0

    def step(op: str, info: dict[str, Any], fn: Callable[..., Any], *args: Any) -> None:
        tag = f"{rnd}.{t}.{n}"
        append_line(log, json.dumps({"ph": "i", "tag": tag, "op": op, **info}) + "\n")
        result = fn(*args)
        append_line(log, json.dumps({"ph": "a", "tag": tag, "op": op, "ret": result}) + "\n")

    while True:
        n += 1
        tag = f"{rnd}.{t}.{n}"
        pick = rng.random()
        if pick < 0.35:
            key, value = f"k{t}-{rng.randrange(20)}", tag
            step("set", {"k": key, "v": value}, kv.set, key, value)
        elif pick < 0.55:
            key, amount = f"c{rng.randrange(3)}", rng.randint(1, 5)
            step("incr", {"k": key, "by": amount}, kv.incr, key, amount)
        elif pick < 0.7:
            keys = rng.sample(range(20), 3)
            mapping = {f"k{t}-{i}": f"{tag}/{i}" for i in keys}
            step("set_many", {"m": mapping}, kv.set_many, mapping)
        elif pick < 0.9:
            payload = {"tag": tag}
            step("enqueue", {"p": payload}, _enqueue_id, q, payload)
        else:
            items = [{"name": "many", "payload": {"tag": f"{tag}/{i}"}} for i in range(3)]
            step(
                "enqueue_many",
                {"p": [item["payload"] for item in items]},
                _enqueue_many_ids,
                q,
                items,
            )


def _writer(url: str, folder: str, index: str, cfg: dict[str, Any]) -> int:
    log = os.path.join(folder, "ops.jsonl")
    threads = [
        threading.Thread(target=_writer_thread, args=(url, log, cfg["round"], t), daemon=True)
        for t in range(int(cfg.get("threads", 2)))
    ]
    for thread in threads:
        thread.start()
    open(os.path.join(folder, "ready-" + index), "w").close()
    for thread in threads:
        thread.join()  # they run until killed; an exception ends one (its traceback on stderr)
    return 5


# -- batch: a worker killed mid-batch ---------------------------------------------------------


def _batch(url: str, folder: str, index: str, cfg: dict[str, Any]) -> int:
    q = jexkv.open_queue(
        url,
        keep_completed=10**6,
        lease_ms=int(cfg.get("lease_ms", 500)),
        max_stalls=int(cfg.get("max_stalls", 10)),
    )
    log = os.path.join(folder, f"ran-{index}.txt")
    pause = float(cfg.get("sleep", 0.002))

    def handler(job: jexkv.Job) -> object:
        append_line(log, f"{job.id}\n")
        time.sleep(pause)
        return {"pid": os.getpid()}

    q.register_worker("batch", handler, concurrency=int(cfg.get("concurrency", 2)))
    open(os.path.join(folder, "ready-" + index), "w").close()
    if not wait_for_file(os.path.join(folder, "stop"), time.monotonic() + 90):
        os._exit(3)
    q.close()
    return 0


# -- load: many processes on one file ---------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " | " + repr(record.exc_info[1])
        self.lines.append(f"{record.levelname}: {text}")


def _load(url: str, folder: str, index: str, cfg: dict[str, Any]) -> int:
    records = _Records()
    logging.getLogger("jexkv").addHandler(records)
    me = int(index)
    procs = int(cfg["procs"])
    rng = random.Random(f"load-{me}-{cfg.get('seed', 0)}")
    kv = jexkv.open_kv(url)
    q = jexkv.open_queue(url, keep_completed=10**6)
    log = os.path.join(folder, f"exec-{index}.txt")

    def handler(job: jexkv.Job) -> object:
        append_line(log, f"{job.id}\n")
        return None

    q.register_worker("load", handler, concurrency=2)
    open(os.path.join(folder, "ready-" + index), "w").close()
    if not wait_for_file(os.path.join(folder, "go"), time.monotonic() + 90):
        return 4

    errors: list[dict[str, Any]] = []
    incrs: list[int] = []
    tokens: list[str] = []
    popped: dict[str, Any] = {}
    bad_reads: list[str] = []
    job_ids: list[str] = []
    calls = 0

    def call(op: str, fn: Callable[..., Any], *args: Any) -> Any:
        nonlocal calls
        calls += 1
        start = time.monotonic()
        try:
            return fn(*args)
        except Exception as exc:  # every one is reported to the test
            errors.append({"op": op, "secs": time.monotonic() - start, **_error(exc)})
            raise

    end = time.monotonic() + float(cfg["duration"])
    n = 0
    while time.monotonic() < end:
        n += 1
        pick = rng.random()
        try:
            if pick < 0.2:
                key = f"p{me}:{rng.randrange(50)}"
                call("set", kv.set, key, {"p": me, "n": n})
            elif pick < 0.4:
                other = rng.randrange(procs)
                key = f"p{other}:{rng.randrange(50)}"
                value = call("get", kv.get, key)
                if value is not None and (not isinstance(value, dict) or value.get("p") != other):
                    bad_reads.append(f"{key} -> {value!r}")
            elif pick < 0.6:
                incrs.append(call("incr", lambda: kv.incr("ctr")))
            elif pick < 0.7:
                key = f"tok:{me}:{len(tokens)}"
                call("set token", kv.set, key, {"tok": key})
                tokens.append(key)
            elif pick < 0.8:
                key = f"tok:{rng.randrange(procs)}:{rng.randrange(len(tokens) + 2)}"
                value = call("pop", kv.pop, key)
                if value is not None:
                    if value != {"tok": key}:
                        bad_reads.append(f"pop {key} -> {value!r}")
                    popped[key] = value
            elif pick < 0.95:
                job = call("enqueue", q.enqueue, "load", "job", {"p": me, "n": n})
                job_ids.append(job.id)
            else:
                items = [{"name": "many", "payload": {"p": me, "n": n, "i": i}} for i in range(5)]
                jobs = call("enqueue_many", q.enqueue_many, "load", items)
                job_ids.extend(job.id for job in jobs)
        except Exception:
            pass  # recorded by call()

    produced = {
        "calls": calls,
        "errors": errors,
        "incrs": incrs,
        "tokens": tokens,
        "popped": popped,
        "bad_reads": bad_reads,
        "jobs": job_ids,
    }
    write_json(os.path.join(folder, f"produced-{index}.json"), produced)
    if not wait_for_file(os.path.join(folder, "stop"), time.monotonic() + 90):
        os._exit(3)
    closing: list[dict[str, Any]] = []
    for obj in (q, kv):
        try:
            obj.close()
        except Exception as exc:
            closing.append(_error(exc))
    produced["close_errors"] = closing
    produced["log"] = records.lines
    write_json(os.path.join(folder, f"result-{index}.json"), produced)
    return 0


# -- fill: a full disk ----------------------------------------------------------------------


def _probe(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": fn()}
    except Exception as exc:
        return _error(exc)


def _fill(url: str, path: str, cfg: dict[str, Any]) -> int:
    import resource

    limit = cfg.get("limit")
    if limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft = os.path.getsize(path) + int(limit)
        resource.setrlimit(
            resource.RLIMIT_FSIZE, (soft, resource.getrlimit(resource.RLIMIT_FSIZE)[1])
        )
    out: dict[str, Any] = {"acked": [], "error": None, "probes": {}, "close": []}
    kv = jexkv.open_kv(url)
    q = jexkv.open_queue(url)
    pad = "x" * int(cfg.get("size", 3000))
    for n in range(int(cfg.get("max", 5000))):
        try:
            kv.set(f"fill{n}", {"n": n, "pad": pad})
        except Exception as exc:
            out["error"] = _error(exc)
            break
        out["acked"].append(n)
    out["probes"] = {
        "get base": _probe(lambda: kv.get("base")),
        "get fill0": _probe(lambda: kv.get("fill0", {}).get("n")),
        "set": _probe(lambda: kv.set("after", 1)),
        "incr": _probe(lambda: kv.incr("base-ctr")),
        "set_many": _probe(lambda: kv.set_many({"m1": 1, "m2": 2})),
        "enqueue": _probe(lambda: q.enqueue("fill", "job", {"pad": pad}).id),
        "counts": _probe(lambda: q.counts("base")),
        "get base again": _probe(lambda: kv.get("base")),
    }
    for obj in (q, kv):
        try:
            obj.close()
        except Exception as exc:
            out["close"].append(_error(exc))
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    return 0


# -- pause-open: descheduled while checking the file --------------------------------------------


def _pause_open(url: str, folder: str, cfg: dict[str, Any]) -> int:
    import sqlite3

    state = {"armed": False, "done": False}

    class Pausing(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if state["armed"] and not state["done"]:
                state["done"] = True
                open(os.path.join(folder, "paused"), "w").close()
                if not wait_for_file(os.path.join(folder, "resume"), time.monotonic() + 60):
                    os._exit(3)
            if sql.strip().upper() == "PRAGMA USER_VERSION" and not state["done"]:
                state["armed"] = True
            return super().execute(sql, *args)

    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", Pausing)
        return real_connect(*args, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        opened = jexkv.open_kv(url) if cfg.get("kind", "kv") == "kv" else jexkv.open_queue(url)
        opened.close()
        out: dict[str, Any] = {"ok": True}
    except Exception as exc:
        out = _error(exc)
    out["paused"] = state["done"]
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    return 0


def main() -> int:
    mode, url, folder, index = sys.argv[1:5]
    cfg = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    if mode == "writer":
        return _writer(url, folder, index, cfg)
    if mode == "batch":
        return _batch(url, folder, index, cfg)
    if mode == "load":
        return _load(url, folder, index, cfg)
    if mode == "fill":
        return _fill(url, cfg["path"], cfg)
    if mode == "pause-open":
        return _pause_open(url, folder, cfg)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
