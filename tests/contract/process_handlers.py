"""Handlers the process-worker tests run in child processes: importable by module and name.

What ``work`` does comes from the job's payload ``{"op": ...}``:
  ok        returns {"pid": the child's pid, "n": payload n}
  fail      raises ValueError("nope")
  unrecoverable  raises jexkv.Unrecoverable("bad input")
  exit3     os._exit(3)
  kill      SIGKILLs its own process
  memory    raises MemoryError (as a process that ran out of memory does)
  loop      loops for ever (until killed)
  sleep     sleeps payload["s"] seconds, then returns its pid
  cpu       a pure-Python loop of about payload["ms"] ms of CPU, returns its pid
  pidfile   writes its pid to the file payload["path"], then sleeps for a minute
"""

from __future__ import annotations

import os
import signal
import time

import jexkv


def work(job: jexkv.Job) -> object:
    op = job.payload["op"]
    if op == "ok":
        return {"pid": os.getpid(), "n": job.payload.get("n")}
    if op == "fail":
        raise ValueError("nope")
    if op == "unrecoverable":
        raise jexkv.Unrecoverable("bad input")
    if op == "exit3":
        os._exit(3)
    if op == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if op == "memory":
        raise MemoryError("could not allocate 10 GiB")
    if op == "loop":
        while True:
            pass
    if op == "sleep":
        time.sleep(job.payload["s"])
        return {"pid": os.getpid()}
    if op == "cpu":
        end = time.process_time() + job.payload["ms"] / 1000
        while time.process_time() < end:
            pass
        return {"pid": os.getpid()}
    if op == "pidfile":
        with open(job.payload["path"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    raise AssertionError(f"unknown op {op!r}")


async def async_work(job: jexkv.Job) -> object:
    return {"pid": os.getpid(), "async": True}
