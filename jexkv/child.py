"""The child process of a process worker (jexkv/processes.py).

It imports the handler by module and name, then runs the jobs its parent sends, one at a
time: a job comes as JSON on one pipe, its result (``ok`` + JSON) or its error (``er`` +
JSON [type, message, traceback]) goes back on the other. An empty message means stop. A
child whose parent died exits within half a second; a MemoryError is reported, then the
child exits (its heap may be spent) so that a fresh one takes the next job.

Started as ``main([MODULE, QUALNAME, PARENT_PID, IN_FD, OUT_FD])`` by a one-line boot that
puts the parent's ``sys.path`` first (processes.py), so it imports the same jexkv and handler
module as its parent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from jexkv.codec import encode
from jexkv.errors import SerializationError, Unrecoverable
from jexkv.jobs import Backoff, Job, job_from

OUT_OF_MEMORY = 71  # the exit code of a child that reported a MemoryError
_PARENT_CHECK_S = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(70)  # the worker died: no orphan


def _handler(module: str, qualname: str) -> Any:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _job(text: bytes) -> Job:
    fields = json.loads(text)
    fields["backoff"] = Backoff.from_dict(fields["backoff"])
    return job_from(fields)


def _error(exc: BaseException) -> bytes:
    kind = "Unrecoverable" if isinstance(exc, Unrecoverable) else type(exc).__name__
    if isinstance(exc, SerializationError):
        message = f"the handler's result is not JSON: {exc}"
    else:
        message = str(exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return b"er" + json.dumps([kind, message, tb]).encode()


def main(argv: list[str]) -> None:
    module, qualname, parent, in_fd, out_fd = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    requests = Connection(int(in_fd), writable=False)
    replies = Connection(int(out_fd), readable=False)
    handler = _handler(module, qualname)
    while True:
        try:
            message = requests.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        try:
            result = handler(_job(message))
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            reply = b"ok" + encode(result).encode()
        except MemoryError as exc:
            replies.send_bytes(_error(exc))
            os._exit(OUT_OF_MEMORY)
        except BaseException as exc:  # the attempt fails; the child goes on
            reply = _error(exc)
        replies.send_bytes(reply)


if __name__ == "__main__":
    main(sys.argv[1:])
