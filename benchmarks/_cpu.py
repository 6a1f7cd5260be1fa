"""The CPU-bound job of benchmarks/processes.py, importable by name by every contender's
worker processes: a pure-Python loop of about ``ms`` milliseconds of CPU time."""

import time


def burn_ms(ms):
    end = time.process_time() + ms / 1000
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def burn(job):
    """jexkv's handler: the payload is the ms to burn."""
    return burn_ms(job.payload)


def noop(job):
    return None


RQ_WORKER = """
import sys
import redis, rq
port, db = sys.argv[1], int(sys.argv[2])
connection = redis.Redis(host="127.0.0.1", port=int(port), db=db)
worker = rq.Worker([rq.Queue("cpu", connection=connection)], connection=connection)
print("ready", flush=True)
sys.stdin.readline()
worker.work(burst=True, logging_level="WARNING")
print("done", flush=True)
"""
